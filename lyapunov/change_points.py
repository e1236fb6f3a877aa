"""Abrupt changes in the mean of many series at once: MATLAB's ``ischange(x, 'mean')``.

MathWorks documents the method as a penalized segmentation: a series A is split into k + 1
contiguous segments at change points i_1 < ... < i_k chosen to minimize

    sum over segments S of C(S)  +  threshold * k,     C(S) = sum_{i in S} (x_i - mean(S))^2,

the squared residuals of each segment about its own mean plus ``threshold`` (MATLAB's
'Threshold', default 1) per change point; a single change exists where C(A1) + C(A2) +
threshold < C(A). MATLAB finds the minimizer with PELT (Killick, Fearnhead & Eckley 2012), an
exact search; this computes the same minimizer by optimal partitioning (dynamic programming over
the segment that ends at each point, O(N^2) per series, batched over series). ``ischange``'s
output marks the first element of every new segment (the change point) True.

The cost is not scaled by the series' variance, so the threshold is in the data's squared
units: for weights of order 0.1 moving by a few 1e-3 in a window, a change is found only where a
segment's mean shift explains more than one unit of squared residuals.

The LEGCNet authors' LE_window.m gives a window exponent 0 whenever ``any(ischange(x,'mean'))``
(or its range is below 1e-5); :func:`has_change_point` is that test.
"""

from __future__ import annotations

import torch
from torch import Tensor

THRESHOLD = 1.0  # MATLAB's default 'Threshold'


def _segment_costs(x: Tensor) -> tuple[Tensor, Tensor]:
    """Prefix sums of the centred series, (..., N + 1) each: C(s, t) of x[s:t] is
    (q[t] - q[s]) - (p[t] - p[s])^2 / (t - s)."""
    centred = x - x.mean(dim=-1, keepdim=True)  # the cost is shift-invariant; centring limits cancellation
    pad = torch.zeros(*x.shape[:-1], 1, dtype=x.dtype, device=x.device)
    return torch.cat([pad, centred.cumsum(-1)], -1), torch.cat([pad, centred.square().cumsum(-1)], -1)


def _optimal_partition(x: Tensor, threshold: float) -> tuple[Tensor, Tensor]:
    """(best, last): best[..., t] is the smallest penalized cost of x[..., :t] (with -threshold
    added, so that k + 1 segments pay k thresholds), last[..., t] where its final segment starts."""
    if x.dim() < 1 or x.shape[-1] < 1:
        raise ValueError("ischange needs series of at least one point")
    n = x.shape[-1]
    p, q = _segment_costs(x.to(torch.float64) if not torch.is_floating_point(x) else x)
    best = torch.empty(*x.shape[:-1], n + 1, dtype=p.dtype, device=x.device)
    last = torch.zeros(*x.shape[:-1], n + 1, dtype=torch.long, device=x.device)
    best[..., 0] = -threshold
    for t in range(1, n + 1):
        starts = torch.arange(t, device=x.device)
        length = (t - starts).to(p.dtype)
        cost = (q[..., t : t + 1] - q[..., :t]) - (p[..., t : t + 1] - p[..., :t]).square() / length
        total = best[..., :t] + cost.clamp(min=0.0) + threshold
        best[..., t], last[..., t] = total.min(dim=-1)
    return best, last


def ischange_mean(x: Tensor, threshold: float = THRESHOLD) -> Tensor:
    """MATLAB's ``ischange(x, 'mean', 'Threshold', threshold)`` along the last dimension: a bool
    tensor of x's shape, True at the first element of every segment after the first."""
    best, last = _optimal_partition(x, threshold)
    flat_last = last.reshape(-1, x.shape[-1] + 1).cpu()
    marks = torch.zeros(flat_last.shape[0], x.shape[-1], dtype=torch.bool)
    for row in range(flat_last.shape[0]):
        end = x.shape[-1]
        while end > 0:
            start = int(flat_last[row, end])
            if start > 0:
                marks[row, start] = True
            end = start
    return marks.reshape(x.shape).to(x.device)


def has_change_point(x: Tensor, threshold: float = THRESHOLD) -> Tensor:
    """``any(ischange(x, 'mean'))`` for each series along the last dimension: (...,) bool. True
    where some segmentation beats the whole series by more than rounding."""
    best, _ = _optimal_partition(x, threshold)
    p, q = _segment_costs(x)
    n = x.shape[-1]
    whole = q[..., n] - p[..., n].square() / n
    return best[..., n] < whole - 1e-12 * whole.abs().clamp(min=1.0)
