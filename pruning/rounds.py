"""Pruning in rounds: score, remove, rescore the masked network, remove again.

With n rounds the total fraction p of the considered weights is removed on the schedule
1 - (1 - p)**(r / n) after round r, i.e. 1 - (1 - p)**(1 / n) of the remaining weights per round.
The schedule is kept as cumulative counts rounded once per round, so rounding never drifts: the
last round lands exactly on round(p * alive), as a single round would. The same holds per layer
for scope 'layerwise'. Any score can be used; synflow with many rounds is the published SynFlow.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Optional, Union

from torch import nn

from pruning import scores
from pruning.mask import Mask
from pruning.select import alive_counts, make_groups, remove
from pruning.validate import check_iterations, check_prune_fraction, considered_layers


def removed_after_round(fraction: float, iterations: int, round_number: int, alive: int) -> int:
    """How many of `alive` weights are gone after `round_number` of `iterations` rounds."""
    if round_number == iterations:
        return round(fraction * alive)
    return round((1.0 - (1.0 - fraction) ** (round_number / iterations)) * alive)


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
    removed = {group: 0 for group in groups}
    for round_number in range(1, iterations + 1):
        target = {group: removed_after_round(fraction, iterations, round_number, alive)
                  for group, alive in alive_at_start.items()}
        counts = {group: target[group] - removed[group] for group in groups}
        if any(counts.values()):
            mask = Mask(remove(score(model, mask, data), dict(mask.items()), counts, highest=highest))
        removed = target
    return mask
