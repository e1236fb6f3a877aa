"""From a recording to masks: which weights' chaos Granger-causes the risk, and the controls.

For every analysed weight: does its exponent series (one value per window) Granger-cause the risk
series? The statistic is `test` (statsmodels' names), its p-value the smallest over lags
1..maxlag. Weights whose p-value is at least alpha are non-causal and pruned; with ``fdr="bh"``
the p-values are first adjusted by Benjamini-Hochberg across the feasible weights. A weight whose
test statsmodels refuses at some lag (a constant exponent series, or a risk series that its own
past fits perfectly: ``InfeasibleTestError``, where the paper's loop skipped the weight) is kept
or pruned by `on_infeasible` and is left out of the adjustment.

Two details of the authors' gc_tests.ipynb are the defaults. Each lag's p-value is rounded to
``pvalue_decimals`` (4) before the minimum is taken and compared with alpha (a p of 0.04996 is
0.05: pruned). And the lags are always 1..maxlag (``lag_rule="authors"``): with n windows
statsmodels needs n > 3 maxlag + 1, and where there are fewer its call raised, their ``except``
gave every weight p = 0, and no weight was pruned. ``lag_rule="cap"`` (ours) tests lags
1..(n - 2) // 3 instead, so the weights are still tested.

The controls have the same counts: `random_control` the same number of pruned weights in every
layer at random places; `magnitude_control` the smallest |w| of the given weights, the same count
per layer (``scope="layerwise"``) or the same total over the analysed layers (``"global"``).
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from branches.chaos.recorder import Recording
from lyapunov import benjamini_hochberg, granger_tests, largest_lag
from pruning.mask import Mask
from pruning.select import remove

FDRS = ("none", "bh")
INFEASIBLE = ("keep", "prune")
SCOPES = ("layerwise", "global")
LAG_RULES = ("authors", "cap")
# Granger candidates are batched this many entries at a time on the CPU: 2**24 ran ~3x faster on 2
# cores (2 threads) than the library's default (2**22) for 52 windows and 14 lags, while one thread
# (--num_threads=auto on 2 cores) is fastest on chunks that stay in cache: 64 us/series at 2**20,
# 69 at 2**19, 99 at 2**21, 127 at 2**24 (46 windows, 14 lags, on the loaded machine).
CPU_CHUNK_ELEMENTS = 1 << 24
ONE_THREAD_CHUNK_ELEMENTS = 1 << 20


def cpu_chunk_elements() -> int:
    """The Granger batch size on the CPU for torch's current thread count."""
    return ONE_THREAD_CHUNK_ELEMENTS if torch.get_num_threads() == 1 else CPU_CHUNK_ELEMENTS


class CausalityTest(NamedTuple):
    min_p: torch.Tensor  # (P,) smallest p-value over the lags
    adjusted: torch.Tensor  # (P,) what is compared with alpha (BH-adjusted with fdr="bh"; NaN where infeasible)
    infeasible: torch.Tensor  # (P,) bool
    pruned: torch.Tensor  # (P,) bool
    maxlag: int  # the lags actually tested: 1..maxlag


def usable_maxlag(maxlag: int, n_windows: int) -> int:
    """`maxlag`, capped at the largest lag `n_windows` points allow."""
    return min(maxlag, largest_lag(n_windows))


def lags_tested(maxlag: int, n_windows: int, lag_rule: str) -> int:
    """The largest lag tested: 0 where the authors' rule tests none (too few windows)."""
    if lag_rule == "authors":
        return maxlag if largest_lag(n_windows) >= maxlag else 0
    return usable_maxlag(maxlag, n_windows)


def round_pvalues(pvalues: torch.Tensor, decimals: int) -> torch.Tensor:
    """`pvalues` rounded to `decimals` places (half to even, as numpy's round); -1 leaves them."""
    return pvalues if decimals < 0 else pvalues.round(decimals=decimals)


def granger_causality(recording: Recording, *, maxlag: int, test: str, alpha: float, fdr: str,
                      on_infeasible: str, device: torch.device | str = "cpu", lag_rule: str = "cap",
                      pvalue_decimals: int = -1) -> CausalityTest:
    """The test of every analysed weight (columns of the recording) against the risk."""
    lags = lags_tested(maxlag, recording.risk.shape[0], lag_rule)
    count = recording.exponents.shape[1]
    if lags == 0:  # the authors' statsmodels call raised for every weight: p = 0, all kept
        zeros = torch.zeros(count, dtype=torch.float64)
        return CausalityTest(zeros, zeros.clone(), torch.zeros(count, dtype=torch.bool),
                             torch.zeros(count, dtype=torch.bool), 0)
    causes = recording.exponents.T.contiguous().to(device)
    chunk = cpu_chunk_elements() if causes.device.type == "cpu" else 1 << 22
    result = granger_tests(causes, recording.risk.to(device), lags, max_chunk_elements=chunk)
    min_p = round_pvalues(getattr(result, test).pvalue, pvalue_decimals).amin(dim=1)
    infeasible = result.infeasible.any(dim=1)
    adjusted = min_p.masked_fill(infeasible, float("nan"))
    if fdr == "bh" and (~infeasible).any():
        adjusted[~infeasible] = benjamini_hochberg(min_p[~infeasible])
    pruned = torch.where(infeasible, on_infeasible == "prune", adjusted >= alpha)
    return CausalityTest(min_p.cpu(), adjusted.cpu(), infeasible.cpu(), pruned.cpu(), lags)


def mask_pruning(template: Mask, layers: list[str], pruned: torch.Tensor) -> Mask:
    """`template` (every prunable weight kept) with the analysed layers' entries set to ~pruned,
    `pruned` being the flattened analysed weights, layer after layer."""
    sizes = [template[name].numel() for name in layers]
    pieces = (~pruned).split(sizes)
    tensors = dict(template.items())
    tensors.update({name: piece.reshape(template[name].shape).to(template[name].device)
                    for name, piece in zip(layers, pieces)})
    return Mask(tensors)


def random_control(mask: Mask, layers: list[str], seed: int) -> Mask:
    """The same number of pruned weights in every analysed layer, at seeded random places."""
    others = [name for name in mask.keys() if name not in layers]
    return mask.shuffled("layerwise", seed, layers_to_ignore=others)


def magnitude_control(mask: Mask, weights: dict[str, torch.Tensor], layers: list[str], scope: str) -> Mask:
    """The analysed weights of smallest |w| pruned: as many per layer as `mask` prunes there, or
    (``global``) as many in all, ranked across the analysed layers. Ties go to the lower index."""
    pruned = {name: mask[name].numel() - int(mask[name].count_nonzero()) for name in layers}
    groups = {(name,): count for name, count in pruned.items()} if scope == "layerwise" else {
        tuple(layers): sum(pruned.values())}
    alive = {name: torch.ones_like(tensor) for name, tensor in mask.items()}
    scores = {name: weights[name].detach().abs().to(mask[name].device) for name in layers}
    return Mask(remove(scores, alive, groups))
