"""The controls that say whether a pruned complete layer is more ordered than chance.

Orderedness rises under pruning for a boring reason too: a sparser block is easier to order. So
the trained block is compared with three nulls, each at its final density (its count n of
nonzero weights):

  (a) shuffled  the trained block with its entries permuted at random: the same magnitudes, signs
                and zeros, placed anywhere (is the arrangement special?);
  (b) random    N(0, 1) weights of the layer's shape pruned by the same rule to n weights (does
                sparsity alone explain it?);
  (c) init      the run's own initial weights pruned the same way (did training add anything?).

"Pruned the same way" follows the rule:
  magnitude rules (topk, dyn_topk, threshold)  keep the n largest |w|;
  random                                       (b) n positions drawn uniformly, (c) the run's own
                                               mask (the rule with the run's seed);
  constraints (tril_*)                         the rule itself, replayed over the run's progress
                                               values with no training in between: what the
                                               constraint does on its own;
  no pruning (the trunk)                       nothing.
Δ is the trained value minus the null's mean; within a run, p is the share of null draws at
least as ordered as the trained block, (1 + #{null >= trained}) / (1 + draws). Across replicates
`paired_test` gives the mean ± std of the Δs and a two-sided Wilcoxon signed-rank test of
trained against null (scipy.stats.wilcoxon: exact for the sample sizes used here).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Optional, Sequence

import numpy as np
import scipy.stats
import torch

from foundations.torch_threads import torch_threads
from orderedness import OrderednessResult, shuffled_entries
from pruning.rules import Rule
from pruning.rules.random import RandomMask

Measure = Callable[[torch.Tensor], OrderednessResult]
HOW = ("none", "magnitude", "random_positions", "replay")


@dataclass
class NullPruning:
    """How nulls (b) and (c) are pruned, and what replaying the rule needs."""

    random: str
    init: str
    make_rule: Optional[Callable[[], Rule]] = None
    progress: Sequence[float] = field(default_factory=list)


def null_pruning(make_rule: Optional[Callable[[], Rule]], progress: Sequence[float]) -> NullPruning:
    """The pruning of the nulls for the rule `make_rule()` builds (None: no pruning)."""
    if make_rule is None:
        return NullPruning("none", "none")
    rule = make_rule()
    if rule.constraint:
        return NullPruning("replay", "replay", make_rule, progress)
    if isinstance(rule, RandomMask):
        return NullPruning("random_positions", "replay", make_rule, progress)
    return NullPruning("magnitude", "magnitude")


def keep_largest(weights: torch.Tensor, count: int) -> torch.Tensor:
    """Each of `weights` (S, ...) with all but its `count` largest |w| zeroed."""
    flat = weights.flatten(1)
    kept = flat.abs().topk(min(count, flat.shape[1]), dim=1).indices
    out = torch.zeros_like(flat).scatter_(1, kept, flat.gather(1, kept))
    return out.view_as(weights)


def keep_random(weights: torch.Tensor, count: int, generator: torch.Generator) -> torch.Tensor:
    """Each of `weights` (S, ...) with all but `count` uniformly drawn entries zeroed."""
    flat = weights.flatten(1)
    kept = torch.rand(flat.shape, generator=generator).argsort(dim=1)[:, :count].to(flat.device)
    out = torch.zeros_like(flat).scatter_(1, kept, flat.gather(1, kept))
    return out.view_as(weights)


def replay(weights: torch.Tensor, make_rule: Callable[[], Rule], progress: Sequence[float]) -> torch.Tensor:
    """Each of `weights` (S, R, C) after a fresh rule was applied at every progress value."""
    out = weights.clone()
    # One intra-op thread: the many tiny tensors of a replay gain nothing from more, and on a
    # busy machine every parallel region can wait a whole time slice for its second thread.
    with torch_threads(1):
        for weight in out.unbind(0):  # views: the rule writes into `out`
            rule = make_rule()
            for x in progress:
                rule.apply(weight, x)
    return out


def prune(weights: torch.Tensor, how: str, count: int, pruning: NullPruning,
          generator: torch.Generator) -> torch.Tensor:
    if how == "none":
        return weights
    if how == "magnitude":
        return keep_largest(weights, count)
    if how == "random_positions":
        return keep_random(weights, count, generator)
    if how == "replay":
        return replay(weights, pruning.make_rule, pruning.progress)
    raise ValueError(f"unknown null pruning {how!r}; expected one of {HOW}")


def describe(result: OrderednessResult, weights: torch.Tensor) -> list[dict]:
    """One plain dict per block of `result` (weights: the (S, R, C) weights they were cut from)."""
    density = ((weights != 0).flatten(1).sum(dim=1).double() / weights[0].numel()).tolist()
    columns = zip(result.orderedness.tolist(), density, result.diagonal_fraction.tolist(), result.gap.tolist(),
                  result.undefined.tolist(), result.permutation.tolist())
    return [{"orderedness": o, "density": d, "self_loop_fraction": s, "gap": g, "undefined": u, "permutation": p}
            for o, d, s, g, u, p in columns]


def null_summary(trained: float, draws: list[dict]) -> dict:
    values = np.array([d["orderedness"] for d in draws], dtype=float)
    defined = values[~np.isnan(values)]
    mean = float(defined.mean()) if defined.size else math.nan
    summary = {"mean": mean, "std": float(defined.std(ddof=1)) if defined.size > 1 else 0.0,
               "delta": trained - mean, "density": float(np.mean([d["density"] for d in draws])),
               "draws": len(draws), "undefined": int(np.isnan(values).sum())}
    if len(draws) > 1:
        at_least = int((defined >= trained - 1e-12).sum())
        summary["p"] = (1 + at_least) / (1 + defined.size)
    return summary


def compare(initial: torch.Tensor, trained: torch.Tensor, units: int, measure: Measure, pruning: NullPruning,
            samples: int, seed: int) -> dict:
    """Start, final and the three nulls for one run: `initial` and `trained` are the layer's
    whole weight (R, C), the block is weight[:, :units]. Null (a) draws from `seed + 1`, (b) and
    (c) from `seed + 2` (`seed` itself is the random rule's, whose mask must not correlate with
    the draws)."""
    both = torch.stack([initial, trained])
    start, final = describe(measure(both[:, :, :units]), both)
    count = int(trained.count_nonzero())
    block = trained[:, :units]
    shuffled = shuffled_entries(block.expand(samples, units, units), seed + 1)
    shuffled_draws = describe(measure(shuffled), shuffled)
    generator = torch.Generator().manual_seed(seed + 2)
    normal = torch.randn((samples, *trained.shape), generator=generator).to(trained)
    random_weights = prune(normal, pruning.random, count, pruning, generator)
    random_draws = describe(measure(random_weights[:, :, :units]), random_weights)
    init_weights = prune(initial[None], pruning.init, count, pruning, generator)
    init_draw = describe(measure(init_weights[:, :, :units]), init_weights)
    value = final["orderedness"]
    return {"start": start, "final": final,
            "nulls": {"shuffled": null_summary(value, shuffled_draws),
                      "random": {**null_summary(value, random_draws), "pruned": pruning.random},
                      "init": {**null_summary(value, init_draw), "pruned": pruning.init}}}


def paired_test(trained: Sequence[float], null: Sequence[float]) -> dict:
    """Across replicates: mean and std of trained - null, and the two-sided Wilcoxon signed-rank
    p-value (1.0 when every difference is zero; NaN with fewer than two pairs)."""
    differences = np.asarray(trained, dtype=float) - np.asarray(null, dtype=float)
    differences = differences[~np.isnan(differences)]
    n = differences.size
    summary = {"mean": float(differences.mean()) if n else math.nan,
               "std": float(differences.std(ddof=1)) if n > 1 else math.nan, "pairs": n, "p": math.nan}
    if n > 1:
        summary["p"] = 1.0 if not differences.any() else float(scipy.stats.wilcoxon(differences).pvalue)
    return summary
