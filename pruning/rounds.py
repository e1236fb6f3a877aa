"""Pruning in rounds: score, remove, rescore the masked network, remove again.

With n rounds the total fraction p of the considered weights is removed on the schedule
1 - (1 - p)**(r / n) after round r, i.e. 1 - (1 - p)**(1 / n) of the remaining weights per round.
The schedule is kept as cumulative counts rounded once per round, so rounding never drifts: the
last round lands exactly on round(p * alive), as a single round would. The same holds per layer
for scope 'layerwise'. Any score can be used; synflow with many rounds is the published SynFlow.

Scope 'erk' ranks within each layer, like 'layerwise', but gives each layer its Erdős–Rényi-Kernel
share of what survives (pruning/allocation.py): the considered weights keep round((1 - p) * alive)
overall, as with the other scopes, spread over the layers at ERK densities of their full shapes
(a layer never gets back weights an earlier mask removed, so after an earlier mask the total may
fall short of the target by what that clamp withholds); each layer reaches its count on the
same geometric schedule over the rounds.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Optional, Union

from torch import nn

from pruning import scores
from pruning.allocation import erk_densities, kept_count
from pruning.mask import Mask
from pruning.select import alive_counts, make_groups, remove
from pruning.validate import check_iterations, check_prune_fraction, considered_layers


def removed_after_round(fraction: float, iterations: int, round_number: int, alive: int) -> int:
    """How many of `alive` weights are gone after `round_number` of `iterations` rounds."""
    if round_number == iterations:
        return round(fraction * alive)
    return round((1.0 - (1.0 - fraction) ** (round_number / iterations)) * alive)


def erk_removals(mask: Mask, alive: dict, fraction: float) -> dict:
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


def _removed_by_round(final: int, alive: int, iterations: int, round_number: int) -> int:
    """Removals after `round_number` on the geometric schedule that ends at `final` of `alive`."""
    if round_number == iterations or alive == 0:
        return final
    return round((1.0 - (1.0 - final / alive) ** (round_number / iterations)) * alive)


def prune_in_rounds(model: nn.Module, strategy: Union[str, scores.Score], fraction: float,
                    iterations: int = 1, *, data: Optional[scores.ScoringData] = None,
                    mask: Optional[Mask] = None, scope: str = "global", highest: bool = False,
                    layers_to_ignore: Iterable[str] = ()) -> Mask:
    """Remove `fraction` of the weights still alive in `mask` (dense if None) over `iterations`
    rounds, rescoring `model` under the current mask each round. `model` is not changed."""
    score = scores.get(strategy) if isinstance(strategy, str) else strategy
    check_prune_fraction(fraction)
    check_iterations(iterations)
    mask = Mask.ones_like(model) if mask is None else mask
    groups = make_groups(considered_layers(mask.keys(), layers_to_ignore), scope)
    alive_at_start = alive_counts(dict(mask.items()), groups)
    final = erk_removals(mask, alive_at_start, fraction) if scope == "erk" else None
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
