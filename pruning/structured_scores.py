"""Structured pruning by any per-weight score: a unit's score is the sum over its incoming weights.

A unit is a neuron (row of a Linear weight, structure 'neurons') or a filter (output channel of a
convolution, structure 'filters'); layers of the other kind and output layers are left alone.
Every considered layer loses round(fraction x its live units), lowest summed scores first (or
highest), ties to the lower unit index, as `pruning.structured.prune_units` does with norms.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import torch

from foundations.errors import UserError
from pruning.mask import Mask
from pruning.select import alive_counts, make_groups, remove
from pruning.structured import STRUCTURES
from pruning.validate import check_prune_fraction, considered_layers


def unit_layers(mask: Mask, structure: str, outputs: Iterable[str], layers_to_ignore: Iterable[str] = ()) -> list[str]:
    """The layers whose units `structure` prunes: Linear (2-dim) or conv (>2-dim) weights, not outputs."""
    if structure not in STRUCTURES:
        raise UserError(f"structure {structure!r} is not a unit: use {', '.join(STRUCTURES)}")
    outputs = set(outputs)
    names = [name for name in considered_layers(mask.keys(), layers_to_ignore) if name not in outputs
             and (mask[name].dim() == 2) == (structure == "neurons")]
    if not names:
        kind = "Linear" if structure == "neurons" else "convolution"
        raise UserError(f"--structure={structure} found no layer to prune: it needs {kind} weights besides the "
                        "output layer and the ignored ones")
    return names


def prune_units_by_scores(scores: Mapping[str, torch.Tensor], mask: Mask, fraction: float, names: list[str],
                          highest: bool = False) -> Mask:
    """Remove `fraction` of the live units of each layer in `names`, ranked by summed weight scores."""
    check_prune_fraction(fraction)
    live = {name: mask[name].flatten(1).any(dim=1) for name in names}
    summed = {name: (scores[name].detach().to(mask[name].device) * mask[name]).flatten(1).sum(dim=1)
              for name in names}
    groups = make_groups(names, "layerwise")
    counts = {group: round(fraction * alive) for group, alive in alive_counts(live, groups).items()}
    kept = remove(summed, live, counts, highest=highest)
    return Mask({name: alive & kept[name].view(-1, *(1,) * (alive.dim() - 1)) if name in kept else alive
                 for name, alive in mask.items()})
