"""Selection: turn scores into a smaller mask by removing exactly k of the weights still alive.

The weights of a group (all considered layers for scope 'global', one layer for the others) are
ranked as one flat vector in mask order. Only alive entries compete, so a pruned weight is never
revived and never counted again. Ties go to the lower flat index (a stable sort), so the same
scores always give the same mask.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import torch

from pruning.mask import Mask, count_true
from pruning.validate import check_prune_fraction, check_scope, considered_layers

Group = tuple[str, ...]


def make_groups(names: list[str], scope: str) -> list[Group]:
    """The sets of layers ranked together: one for 'global', one per layer for 'layerwise' and for
    every allocation scope (erk, lamp: pruning/rounds.ALLOCATIONS)."""
    check_scope(scope)
    if scope == "global":
        return [tuple(names)] if names else []
    return [(name,) for name in names]


def alive_counts(alive: Mapping[str, torch.Tensor], groups: list[Group]) -> dict[Group, int]:
    """How many entries are still alive in each group (one host sync)."""
    names = [name for group in groups for name in group]
    per_layer = dict(zip(names, count_true([alive[name] for name in names])))
    return {group: int(sum(per_layer[name] for name in group)) for group in groups}


def remove(scores: Mapping[str, torch.Tensor], alive: Mapping[str, torch.Tensor],
           counts: Mapping[Group, int], *, highest: bool = False) -> dict[str, torch.Tensor]:
    """A copy of `alive` (bool tensors) with `counts[group]` more entries switched off in every
    group: the alive entries with the lowest scores, or the highest if `highest`."""
    result = dict(alive)
    for group, count in counts.items():
        if count <= 0:
            continue
        device = alive[group[0]].device
        for name in group:
            if scores[name].shape != alive[name].shape:
                raise ValueError(f"scores for {name} have shape {tuple(scores[name].shape)}, "
                                 f"the mask has {tuple(alive[name].shape)}")
        flat_alive = torch.cat([alive[name].reshape(-1) for name in group])
        flat_scores = torch.cat([scores[name].detach().reshape(-1).to(device) for name in group])
        candidates = flat_alive.nonzero().squeeze(1)
        if count > candidates.numel():
            raise ValueError(f"cannot remove {count} entries of {group}: only {candidates.numel()} are alive")
        values = flat_scores[candidates]
        if torch.isnan(values).any():
            raise ValueError(f"scores for {', '.join(group)} contain NaN: the scoring method broke down")
        order = torch.sort(values, stable=True, descending=highest).indices
        flat_alive[candidates[order[:count]]] = False
        pieces = flat_alive.split([alive[name].numel() for name in group])
        result.update({name: piece.view_as(alive[name]) for name, piece in zip(group, pieces)})
    return result


def prune(scores: Mapping[str, torch.Tensor], mask: Mask, fraction: float, *, scope: str = "global",
          highest: bool = False, layers_to_ignore: Iterable[str] = ()) -> Mask:
    """Remove round(fraction * alive) weights of the considered layers, per group of `scope`.

    `fraction` is of the weights still alive (so L calls with 0.2 leave 0.8**L of them); layers in
    `layers_to_ignore` keep their mask untouched. Python's round() is used (halves go to even).
    """
    check_prune_fraction(fraction)
    groups = make_groups(considered_layers(mask.keys(), layers_to_ignore), scope)
    counts = {group: round(fraction * alive) for group, alive in alive_counts(mask, groups).items()}
    return Mask(remove(scores, dict(mask.items()), counts, highest=highest))
