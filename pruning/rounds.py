"""Pruning in rounds: score, remove, rescore the masked network, remove again.

With n rounds the total fraction p of the considered weights is removed on the schedule
1 - (1 - p)**(r / n) after round r, i.e. 1 - (1 - p)**(1 / n) of the remaining weights per round.
The schedule is kept as cumulative counts rounded once per round, so rounding never drifts: the
last round lands exactly on round(p * alive), as a single round would. The same holds per layer
for scope 'layerwise'. Any score can be used; synflow with many rounds is the published SynFlow.

The other scopes are allocations (ALLOCATIONS): a function of the network and the starting mask
that says how many weights each layer loses in all; each layer then reaches its count on the same
geometric schedule over the rounds, ranked within the layer by the score.
  erk   each layer keeps its Erdős–Rényi-Kernel share of what survives (pruning/allocation.py): the
        considered weights keep round((1 - p) * alive) overall, spread over the layers at ERK
        densities of their full shapes (a layer never gets back weights an earlier mask removed,
        so after an earlier mask the total may fall short of the target by what that clamp
        withholds);
  lamp  the layers lose what a global ranking by LAMP score takes (pruning/allocation.py, Lee et al. 2021,
        from the weights' magnitudes): with strategy magnitude in one round that is LAMP pruning
        itself; with another score, LAMP sets the per-layer counts and the score picks the weights.
  owl   outlier-weighted layerwise sparsity (pruning/post_training/owl.py, Yin et al. 2024): a layer
        with more outliers of the Wanda metric |W| * ||X|| (over calibration inputs the score's
        examples give) keeps more; with wanda or sparsegpt (branches/oneshot/) it is their setting.

With `structure` 'N:M' (pruning/nm.py) every row of every considered layer keeps N of every M
consecutive inputs, the highest-scoring ones: the pattern alone sets the fraction removed
(1 - N/M of a dense layer; `fraction` must be None or equal to it), and no allocation applies (the
scope must be 'global' or 'layerwise', which mean the same here). Over n rounds round r keeps
round(M * (N/M)**(r/n)) of every M (the decaying N:M of Kao et al. 2022), the last exactly N.
A group that an earlier mask left with fewer than N alive keeps only those.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Optional, Union

from torch import nn

from foundations.errors import UserError
from pruning import scores
from pruning.allocation import erk_densities, kept_count, lamp_removals
from pruning.mask import Mask
from pruning.nm import kept_per_group, nm_mask, parse_pattern
from pruning.post_training.owl import owl_removals
from pruning.select import Group, alive_counts, make_groups, remove
from pruning.validate import check_iterations, check_prune_fraction, considered_layers

# An allocation: (model, mask, {(layer,): alive}, fraction, data) -> {(layer,): weights that layer loses in all}
Allocation = Callable[[nn.Module, Mask, dict[Group, int], float, Optional[scores.ScoringData]], dict[Group, int]]


def removed_after_round(fraction: float, iterations: int, round_number: int, alive: int) -> int:
    """How many of `alive` weights are gone after `round_number` of `iterations` rounds."""
    if round_number == iterations:
        return round(fraction * alive)
    return round((1.0 - (1.0 - fraction) ** (round_number / iterations)) * alive)


def erk_removals(model: nn.Module, mask: Mask, alive: dict[Group, int], fraction: float,
                 data: Optional[scores.ScoringData] = None) -> dict[Group, int]:
    """{(layer,): weights that layer loses} so the layers keep ERK shares of round((1 - fraction) *
    alive) weights, none more than it has alive."""
    total_alive = sum(alive.values())
    if total_alive == 0:
        return {group: 0 for group in alive}
    shapes = {group[0]: tuple(mask[group[0]].shape) for group in alive}
    kept = total_alive - round(fraction * total_alive)
    density = kept / sum(math.prod(shape) for shape in shapes.values())
    if density <= 0:
        return dict(alive)
    densities = erk_densities(shapes, density)
    return {group: count - min(count, kept_count(math.prod(shapes[group[0]]), densities[group[0]]))
            for group, count in alive.items()}


# Every scope of pruning/validate.SCOPES but 'global' and 'layerwise' is one entry here.
ALLOCATIONS: dict[str, Allocation] = {
    "erk": erk_removals,
    "lamp": lamp_removals,
    "owl": owl_removals,
}


def _removed_by_round(final: int, alive: int, iterations: int, round_number: int) -> int:
    """Removals after `round_number` on the geometric schedule that ends at `final` of `alive`."""
    if round_number == iterations or alive == 0:
        return final
    return round((1.0 - (1.0 - final / alive) ** (round_number / iterations)) * alive)


def check_structure(structure: str, fraction: Optional[float], scope: str) -> tuple[int, int]:
    """(N, M) of an N:M `structure`, refusing a fraction or an allocation that contradicts it."""
    n, m = parse_pattern(structure)
    if fraction is not None and abs(fraction - (1 - n / m)) > 1e-9:
        raise UserError(f"--prune_fraction={fraction} contradicts --structure={structure}, which removes "
                        f"{1 - n / m:g} of every layer: leave --prune_fraction out or set it to {1 - n / m:g}")
    if scope not in ("global", "layerwise"):
        raise UserError(f"--prune_scope={scope} allocates sparsity among layers, but --structure={structure} "
                        f"gives every layer {n}:{m}: leave --prune_scope out")
    return n, m


def prune_to_groups(model: nn.Module, strategy: Union[str, scores.Score], kept: int, m: int, *,
                    data: Optional[scores.ScoringData] = None, mask: Optional[Mask] = None,
                    highest: bool = False, layers_to_ignore: Iterable[str] = ()) -> Mask:
    """Score `model` under `mask` once and keep the `kept` best of every M consecutive inputs of
    every row of the considered layers (the lowest-scoring ones if `highest`)."""
    score = scores.get(strategy) if isinstance(strategy, str) else strategy
    mask = Mask.ones_like(model) if mask is None else mask
    ranked = score(model, mask, data)
    if highest:
        ranked = {name: -values.double() for name, values in ranked.items()}
    return nm_mask(ranked, mask, kept, m, layers_to_ignore)


def prune_in_rounds(model: nn.Module, strategy: Union[str, scores.Score], fraction: Optional[float],
                    iterations: int = 1, *, data: Optional[scores.ScoringData] = None,
                    mask: Optional[Mask] = None, scope: str = "global", highest: bool = False,
                    layers_to_ignore: Iterable[str] = (), structure: Optional[str] = None) -> Mask:
    """Remove `fraction` of the weights still alive in `mask` (dense if None) over `iterations`
    rounds, rescoring `model` under the current mask each round; with `structure` 'N:M', keep N of
    every M instead (`fraction` None or 1 - N/M). `model` is not changed."""
    score = scores.get(strategy) if isinstance(strategy, str) else strategy
    check_iterations(iterations)
    mask = Mask.ones_like(model) if mask is None else mask
    if structure is not None:
        n, m = check_structure(structure, fraction, scope)
        for round_number in range(1, iterations + 1):
            kept = n if round_number == iterations else kept_per_group(n, m, (n / m) ** (round_number / iterations))
            if kept < m:
                mask = prune_to_groups(model, score, kept, m, data=data, mask=mask, highest=highest,
                                       layers_to_ignore=layers_to_ignore)
        return mask
    if fraction is None:
        raise UserError("give --prune_fraction (the fraction of the weights to remove) or an N:M --structure")
    check_prune_fraction(fraction)
    groups = make_groups(considered_layers(mask.keys(), layers_to_ignore), scope)
    alive_at_start = alive_counts(dict(mask.items()), groups)
    allocation = ALLOCATIONS.get(scope)
    final = None if allocation is None else allocation(model, mask, alive_at_start, fraction, data)
    removed = {group: 0 for group in groups}
    for round_number in range(1, iterations + 1):
        if final is None:
            target = {group: removed_after_round(fraction, iterations, round_number, alive)
                      for group, alive in alive_at_start.items()}
        else:
            target = {group: _removed_by_round(final[group], alive, iterations, round_number)
                      for group, alive in alive_at_start.items()}
        counts = {group: target[group] - removed[group] for group in groups}
        if any(counts.values()):
            mask = Mask(remove(score(model, mask, data), dict(mask.items()), counts, highest=highest))
        removed = target
    return mask
