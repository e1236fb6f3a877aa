"""Rosenstein's largest Lyapunov exponent for a batch of series, all at once.

For each series: delay-embed it (vectors ``X_i = [x_i, x_{i+lag}, ..., x_{i+(emb_dim-1)lag}]``),
pair every reference vector with its nearest Euclidean neighbour that is more than ``min_tsep``
steps away in time, follow each pair for ``trajectory_len`` steps, and average the log distance
over pairs at each step (the divergence curve). The exponent is the least-squares slope of the
curve (``fit="poly"``) or its first step, ``curve[1] - curve[0]`` (``fit="diff"``).

The semantics follow nolds 0.6.2 ``lyap_r`` exactly, so that the two agree to rounding:
reference vectors and neighbours are both restricted to the first ``m - trajectory_len + 1``
vectors (those that can be followed for the whole trajectory), ties go to the earliest neighbour,
pairs at zero distance are left out of that step's mean, steps where every pair is at zero
distance are ``-inf`` in the curve and left out of the fit, and the slope is divided by ``tau``.
"""

from typing import NamedTuple

import torch
from torch import Tensor

from foundations.errors import UserError

FITS = ("poly", "diff")


class LyapunovResult(NamedTuple):
    exponent: Tensor  # (...,) largest Lyapunov exponent per series; degenerate_value where flagged
    curve: Tensor  # (..., trajectory_len) mean log divergence per step (-inf: every pair at distance 0)
    degenerate: Tensor  # (...,) bool: constant/near-constant/non-finite series, or no finite fit


def min_series_length(emb_dim: int, lag: int, min_tsep: int, trajectory_len: int) -> int:
    """Shortest series for which every reference vector has at least one admissible neighbour."""
    return (emb_dim - 1) * lag + trajectory_len + 2 * min_tsep + 1


def largest_lyapunov(
    x: Tensor,
    *,
    emb_dim: int = 2,
    lag: int = 1,
    min_tsep: int = 0,
    trajectory_len: int = 20,
    fit: str = "poly",
    fit_offset: int = 0,
    tau: float = 1.0,
    decimals: int | None = None,
    tol: float = 0.0,
    degenerate_value: float = 0.0,
    max_chunk_elements: int | None = None,
) -> LyapunovResult:
    """Largest Lyapunov exponent of every series in ``x`` (shape ``(..., N)``; leading dimensions
    are flattened, which copies a non-contiguous view: chunk huge views before calling).

    ``decimals`` rounds the input first (the chaos-causality data were rounded to 6). A series
    whose range is ``<= tol``, that holds a non-finite value, or whose curve leaves no finite fit
    is flagged ``degenerate`` and gets ``degenerate_value`` as its exponent. Pairwise distances are
    computed for at most ``max_chunk_elements`` entries at a time (default: 2**19 on CPU, where
    chunks that fit in cache are fastest, 2**25 elsewhere), so memory stays bounded for any batch.
    """
    _check_arguments(x, emb_dim, lag, min_tsep, trajectory_len, fit, fit_offset)
    batch_shape, n = x.shape[:-1], x.shape[-1]
    series = x.reshape(-1, n)
    if decimals is not None:
        series = torch.round(series, decimals=decimals)

    ntraj = n - (emb_dim - 1) * lag - trajectory_len + 1
    if max_chunk_elements is None:
        max_chunk_elements = 1 << 19 if x.device.type == "cpu" else 1 << 25
    rows = max(1, max_chunk_elements // (ntraj * ntraj))
    curve = series.new_empty(series.shape[0], trajectory_len)
    for start in range(0, series.shape[0], rows):
        chunk = series[start : start + rows]
        curve[start : start + rows] = divergence_curve(chunk, emb_dim, lag, min_tsep, trajectory_len)

    if fit == "poly":
        exponent = _least_squares_slope(curve, fit_offset) / tau
    else:
        exponent = (curve[:, 1] - curve[:, 0]) / tau

    flat_range = series.amax(dim=1) - series.amin(dim=1) if series.shape[0] else exponent
    degenerate = ~(flat_range > tol) | ~torch.isfinite(exponent)
    exponent = exponent.masked_fill(degenerate, degenerate_value)
    return LyapunovResult(
        exponent.reshape(batch_shape),
        curve.reshape(*batch_shape, trajectory_len),
        degenerate.reshape(batch_shape),
    )


def divergence_curve(x: Tensor, emb_dim: int, lag: int, min_tsep: int, trajectory_len: int) -> Tensor:
    """Mean log distance between nearest-neighbour pairs after k = 0..trajectory_len-1 steps.

    ``x`` is ``(B, N)``; the result is ``(B, trajectory_len)``. Memory is ``O(B * ntraj**2)``:
    callers chunk over B.
    """
    b, n = x.shape
    reach = (emb_dim - 1) * lag
    ntraj = n - reach - trajectory_len + 1

    # Squared distance between embedded vectors i and j (both < ntraj): the sum over embedding
    # coordinates e of the squared scalar differences (x[i + e*lag] - x[j + e*lag])**2, which are
    # entries of one matrix of squared differences shifted along its diagonal. Added in
    # coordinate order and without fused multiply-adds, so the rounding is the same as nolds'.
    head = x[:, : ntraj + reach].contiguous()  # broadcasting over a strided slice is much slower
    sq_diff = (head[:, :, None] - head[:, None, :]).square_()
    dist2 = sq_diff[:, :ntraj, :ntraj]
    for e in range(1, emb_dim):
        s = e * lag
        dist2 = dist2 + sq_diff[:, s : s + ntraj, s : s + ntraj]
    dist2 = dist2.contiguous()  # a copy only when emb_dim == 1
    for offset in range(-min(min_tsep, ntraj - 1), min(min_tsep, ntraj - 1) + 1):
        dist2.diagonal(offset, dim1=1, dim2=2).fill_(float("inf"))  # |i - j| <= min_tsep
    neighbour = _nearest_by_distance(dist2)  # (B, ntraj)

    # Follow each pair (i, neighbour[i]) for trajectory_len steps: both trajectories are rows
    # of the series' sliding windows of `span` points; the reference side is a strided view.
    span = trajectory_len + reach
    windows = x.unfold(1, span, 1)  # (B, n - span + 1, span), no copy
    rows = torch.arange(b, device=x.device)[:, None]
    step_sq = (windows[rows, neighbour] - windows[:, :ntraj]).square_()
    pair_dist2 = step_sq[:, :, :trajectory_len]
    for e in range(1, emb_dim):
        s = e * lag
        pair_dist2 = pair_dist2 + step_sq[:, :, s : s + trajectory_len]

    # Pairs at distance zero are left out of that step's mean: their log, -inf, counts as 0.
    count = pair_dist2.sign().sum(dim=1)
    log_dist2 = pair_dist2.log_().nan_to_num_(nan=float("nan"), posinf=float("inf"), neginf=0.0)
    mean_log = log_dist2.sum(dim=1).mul_(0.5) / count.clamp(min=1.0)  # log d = log(d**2) / 2
    return mean_log.masked_fill(count == 0, float("-inf"))


def _nearest_by_distance(dist2: Tensor) -> Tensor:
    """For squared distances ``(B, M, M)``, the index of each row's nearest neighbour, the
    earliest among ties of the *distance* ``sqrt(dist2)``, as nolds' argmin over distances.

    Distinct squared distances can round to the same distance (this is common on rounded data),
    so ``argmin(dist2)`` would sometimes pick a later index. Rather than taking M*M square
    roots, find per row the largest squared distance whose root equals the nearest distance and
    take the first entry at or below it.
    """
    nearest2 = dist2.amin(dim=2, keepdim=True)
    root = nearest2.sqrt()
    # Square roots round to root below the midpoint m between root and the next float, and
    # m**2 = root * next(root) + ulp(root)**2 / 4: the largest squared distance whose root is
    # still root lies within one ulp of the rounded product.
    inf = dist2.new_tensor(float("inf"))
    guess = root * torch.nextafter(root, inf)
    candidates = torch.stack([torch.nextafter(guess, -inf), guess, torch.nextafter(guess, inf)])
    limit = torch.where(candidates.sqrt() == root, candidates, nearest2).amax(dim=0)
    return (dist2 <= limit).view(torch.uint8).argmax(dim=2)


def _least_squares_slope(curve: Tensor, fit_offset: int) -> Tensor:
    """Slope of the straight line fitted to the finite points of each curve, skipping the first
    ``fit_offset`` of them (nolds drops -inf points first, then applies the offset)."""
    finite = torch.isfinite(curve)
    rank = finite.cumsum(dim=1) - 1
    weight = (finite & (rank >= fit_offset)).to(curve.dtype)
    k = torch.arange(curve.shape[1], device=curve.device, dtype=curve.dtype)
    y = torch.where(weight > 0, curve, 0.0)
    count = weight.sum(dim=1, keepdim=True)
    k_mean = (weight * k).sum(dim=1, keepdim=True) / count
    y_mean = (weight * y).sum(dim=1, keepdim=True) / count
    k_centered = weight * (k - k_mean)
    slope = (k_centered * (y - y_mean)).sum(dim=1) / k_centered.square().sum(dim=1)
    return torch.where(count.squeeze(1) >= 2, slope, float("nan"))


def _check_arguments(
    x: Tensor, emb_dim: int, lag: int, min_tsep: int, trajectory_len: int, fit: str, fit_offset: int
) -> None:
    if not torch.is_floating_point(x) or x.dim() < 1:
        raise UserError(f"x must be a floating-point tensor of shape (..., N), got {x.dtype} {tuple(x.shape)}")
    if emb_dim < 1 or lag < 1 or min_tsep < 0 or trajectory_len < 1 or fit_offset < 0:
        raise UserError(
            f"need emb_dim >= 1, lag >= 1, min_tsep >= 0, trajectory_len >= 1, fit_offset >= 0; got "
            f"emb_dim={emb_dim}, lag={lag}, min_tsep={min_tsep}, trajectory_len={trajectory_len}, "
            f"fit_offset={fit_offset}"
        )
    if fit not in FITS:
        raise UserError(f"unknown fit {fit!r}: choose one of {', '.join(FITS)}")
    if fit == "diff" and trajectory_len < 2:
        raise UserError("fit='diff' needs trajectory_len >= 2 (it is curve[1] - curve[0])")
    if fit == "poly" and trajectory_len < fit_offset + 2:
        raise UserError(
            f"fit='poly' needs trajectory_len >= fit_offset + 2 to fit a line, got {trajectory_len}"
        )
    need = min_series_length(emb_dim, lag, min_tsep, trajectory_len)
    if x.shape[-1] < need:
        raise UserError(
            f"series of length {x.shape[-1]} are too short for emb_dim={emb_dim}, lag={lag}, "
            f"min_tsep={min_tsep}, trajectory_len={trajectory_len}: need at least {need} points"
        )
