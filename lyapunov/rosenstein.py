"""Rosenstein's largest Lyapunov exponent for a batch of series, all at once.

For each series: delay-embed it (vectors ``X_i = [x_i, x_{i+lag}, ..., x_{i+(emb_dim-1)lag}]``),
pair every reference vector with its nearest Euclidean neighbour that is more than ``min_tsep``
steps away in time, follow each pair for ``trajectory_len`` steps, and average the log distance
over pairs at each step (the divergence curve). The exponent is the least-squares slope of the
curve (``fit="poly"``) or its first step, ``curve[1] - curve[0]`` (``fit="diff"``).

With ``neighbours="nolds"`` (the default) the semantics follow nolds 0.6.2 ``lyap_r`` exactly, so
that the two agree to rounding: reference vectors and neighbours are both restricted to the first
``M = N - (emb_dim - 1) * lag - trajectory_len + 1`` vectors (those that can be followed for the
whole trajectory), ties of the correctly rounded distance go to the earliest neighbour (numpy's
``sqrt`` is IEEE-exact and its ``argmin`` takes the first; torch's ``sqrt`` need not be exact, see
:mod:`lyapunov.exact_roots`), squared coordinates are added in numpy's order, pairs at zero
distance are left out of that step's mean, steps where every pair is at zero distance are
``-inf`` in the curve and left out of the fit, and the slope is divided by ``tau``.

With ``neighbours="tisean"`` the pairs are those of TISEAN's ``lyap_r -m emb_dim -d lag
-t min_tsep -s trajectory_len-1`` (see :mod:`lyapunov.neighbours`): the series is rescaled to
[0, 1] first, exact duplicates are never neighbours, ties go by TISEAN's box order, and the last
``min_tsep`` reference vectors are not used (its loop stops there). The curve is TISEAN's output
(the mean of ``log(d**2) / 2`` over pairs, on the rescaled series), so it sits ``log(max - min)``
below the nolds-rule curve where both pick the same pairs. The slope and ``curve[1] - curve[0]``
depend on the rescaling only through which pairs are picked: logs of distances shift by
``-log(max - min)`` exactly only up to rounding, and on rounded data that rounding decides ties,
so TISEAN's result (and ours, equal to it) can change when the data are shifted by a constant.
Remaining differences from TISEAN: its output file prints 7 significant digits (``%e``), ours
are not rounded; its sums run in another order (differences ~1e-15); a reference whose
candidates all sit at 1 or more (after rescaling) makes TISEAN search forever, and we flag the
series ``degenerate`` instead; a candidate within ~1e-13 of a search radius may fall in another
box through TISEAN's rounding, which is not modelled.

Everything is computed in float64 whatever the input dtype (one chunk at a time, so memory stays
bounded); results are returned in the input's dtype.

Two implementations compute the divergence curves (``backend``). On the CPU they run as a
compiled loop, one series at a time (:mod:`lyapunov.rosenstein_loop`, about 2x faster there);
elsewhere as tensor passes over a chunk of series at once (:func:`divergence_curve`). Both pick
the same pairs by either rule; their curves differ in rounding only (about 1e-16: the loop takes
one logarithm per block of pairs, the passes one per pair).
"""

import math
from typing import NamedTuple

import torch
from torch import Tensor

from foundations.errors import UserError
from foundations.torch_threads import torch_threads
from lyapunov.neighbours import RULES, nearest_nolds_columns, nearest_tisean_columns, rescale_unit
from lyapunov.rosenstein_loop import MAX_EMB_DIM, divergence_curves, least_squares_slopes

FITS = ("poly", "diff")
BACKENDS = ("auto", "loop", "tensor")
LOOP_CHUNK_ELEMENTS = 1 << 22  # series points per float64 copy handed to the compiled loop
# Windows of at least this many points are followed series first, shorter ones batch last
# (divergence_curve); the results are bitwise the same. Measured on 2 cores, 2 threads, windows
# of 50: series first 3.86-3.93 against 3.88-4.40 us/window at 21 points (trajectory_len 20);
# batch last 4.02-4.04 against 4.55-4.62 us/series at 5 (the chaos-causality analysis's 4).
SERIES_FIRST_SPAN = 12


class LyapunovResult(NamedTuple):
    exponent: Tensor  # (...,) largest Lyapunov exponent per series; degenerate_value where flagged
    curve: Tensor  # (..., trajectory_len) mean log divergence per step (-inf: no pair at a distance > 0)
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
    neighbours: str = "nolds",
    max_chunk_elements: int | None = None,
    skip_degenerate: bool = False,
    backend: str = "auto",
) -> LyapunovResult:
    """Largest Lyapunov exponent of every series in ``x`` (shape ``(..., N)``; leading dimensions
    are flattened, which copies a non-contiguous view unless it is already 2-D: chunk huge
    views before calling).

    ``decimals`` rounds the input first, as ``numpy.round`` (the chaos-causality data were
    rounded to 6). A series whose range ``max - min`` is ``<= tol``, that holds a non-finite
    value, or whose curve leaves no finite fit is flagged ``degenerate`` and gets
    ``degenerate_value`` as its exponent. With ``decimals`` the range is compared on that
    decimal grid (rounded to ``decimals`` places), so on 6-decimal data ``tol=9e-6`` means
    exactly "range below 1e-5" and ``tol=1e-5`` "range at most 1e-5", free of float noise.
    ``neighbours`` picks the pairing rule, ``"nolds"`` or ``"tisean"`` (module docstring).

    ``backend``: ``"auto"`` (the compiled loop on the CPU, the tensor passes elsewhere), ``"loop"``
    or ``"tensor"`` (module docstring). Both use ``torch.get_num_threads()`` CPU threads.

    The tensor passes compute pairwise distances for at most ``max_chunk_elements`` entries at a
    time (default on the CPU: 2**19 per torch thread, up to four, see `cpu_chunk_elements`; 2**25
    elsewhere), in float64, so memory stays bounded for any batch and float32 input gives the
    float64 result. The loop holds one row of distances per thread.

    ``skip_degenerate`` leaves out the divergence of series already degenerate by their range
    (static weights are common in trajectories): their curve is NaN, their exponent as above.

    A ring buffer of the last W snapshots of P weights, ``(P, W)``, is passed in time order:
    ``buffer.roll(-oldest, dims=1)`` (one copy), or keep a ``(P, 2W)`` buffer with every
    snapshot written at columns ``c`` and ``c + W`` and pass the view ``buffer[:, c + 1 : c + 1 + W]``
    after writing column c (no copy: only one chunk at a time is ever copied).
    """
    _check_arguments(x, emb_dim, lag, min_tsep, trajectory_len, fit, fit_offset, neighbours, backend)
    batch_shape, n = x.shape[:-1], x.shape[-1]
    series = x.reshape(-1, n)
    count = series.shape[0]

    ntraj = n - (emb_dim - 1) * lag - trajectory_len + 1
    loop = uses_loop(x.device, neighbours, emb_dim, backend)
    if loop:
        rows = max(1, LOOP_CHUNK_ELEMENTS // n)  # bounds only the float64 copy of the series
    else:
        if max_chunk_elements is None:
            max_chunk_elements = cpu_chunk_elements() if x.device.type == "cpu" else 1 << 25
        rows = max(1, max_chunk_elements // (ntraj * ntraj))
    curve = torch.empty(count, trajectory_len, dtype=torch.float64, device=x.device)
    flagged = torch.empty(count, dtype=torch.bool, device=x.device)
    workspace = Workspace()
    for start in range(0, count, rows):
        part = slice(start, start + rows)
        if loop:
            # One series per row, as the loop takes them. Rounded and ranged on one torch thread:
            # after a parallel region OpenMP's workers spin for a while, taking a core from the
            # loop's threads (0.3 us/window more at 2 threads on 2 cores, measured).
            threads = torch.get_num_threads()
            with torch_threads(1):
                chunk, flat = _rounded_and_flat(series[part].detach().to(torch.float64).contiguous(), 1, decimals, tol)
            part_curve, stuck = divergence_curves(chunk.numpy(), emb_dim, lag, min_tsep, trajectory_len, neighbours,
                                                  skip=flat.numpy() if skip_degenerate else None, threads=threads)
            curve[part] = torch.from_numpy(part_curve)
            flagged[part] = flat | torch.from_numpy(stuck)
            continue
        # One series per column (time along dim 0): every pass below then runs along the
        # contiguous batch dimension. A ring buffer's (P, W) view is already laid out this way.
        chunk = workspace.get("series", (n, series[part].shape[0]), torch.float64, x.device)
        chunk.copy_(series[part].T)
        chunk, flat = _rounded_and_flat(chunk, 0, decimals, tol)
        live = None
        if skip_degenerate and bool(flat.any()):
            live = (~flat).nonzero().squeeze(1)
            chunk = chunk.index_select(1, live)
        if neighbours == "tisean":
            chunk = rescale_unit(chunk, dim=0)
        part_curve, stuck = divergence_curve(chunk, emb_dim, lag, min_tsep, trajectory_len, neighbours, workspace)
        if live is not None:
            curve[part] = float("nan")
            curve[part][live] = part_curve
            flagged[part] = flat
            flagged[part][live] |= stuck
        else:
            curve[part] = part_curve
            flagged[part] = flat | stuck

    if fit == "poly" and curve.device.type == "cpu":
        exponent = torch.from_numpy(least_squares_slopes(curve.numpy(), fit_offset)) / tau
    elif fit == "poly":
        exponent = _least_squares_slope(curve, fit_offset) / tau
    else:
        exponent = (curve[:, 1] - curve[:, 0]) / tau
    degenerate = flagged | ~torch.isfinite(exponent)
    exponent = exponent.masked_fill(degenerate, degenerate_value)
    return LyapunovResult(
        exponent.to(x.dtype).reshape(batch_shape),
        curve.to(x.dtype).reshape(*batch_shape, trajectory_len),
        degenerate.reshape(batch_shape),
    )


def uses_loop(device: torch.device, neighbours: str, emb_dim: int, backend: str = "auto") -> bool:
    """Whether the compiled loop (:mod:`lyapunov.rosenstein_loop`) computes the curves: with
    ``backend="auto"``, on the CPU (for the nolds rule, up to MAX_EMB_DIM coordinates); the
    tensor passes otherwise (the GPU)."""
    fits = device.type == "cpu" and (neighbours == "tisean" or emb_dim <= MAX_EMB_DIM)
    if backend == "loop" and not fits:
        raise UserError(f"backend='loop' runs on the CPU, and for the nolds rule with emb_dim <= {MAX_EMB_DIM}; "
                        f"got neighbours={neighbours!r} on {device.type} with emb_dim={emb_dim}: "
                        "use backend='tensor' (or 'auto')")
    return backend != "tensor" and fits


def _rounded_and_flat(chunk: Tensor, time_dim: int, decimals: int | None, tol: float) -> tuple[Tensor, Tensor]:
    """The series rounded to ``decimals`` (when given), and which are degenerate by their range
    or a non-finite value (see largest_lyapunov)."""
    if decimals is not None:
        chunk = torch.round(chunk, decimals=decimals)
    spread = chunk.amax(dim=time_dim) - chunk.amin(dim=time_dim)
    if decimals is not None:
        spread = torch.round(spread, decimals=decimals)  # a difference of grid values, on the grid
    return chunk, ~(spread > tol) | ~torch.isfinite(spread)


def cpu_chunk_elements() -> int:
    """The default chunk on the CPU: 2**19 distances per torch thread, up to 4 threads. Measured
    on 2 cores (windows of 50, medians of 4 rounds): one thread 5.72 us/window at 2**19 against
    5.97 at 2**20; two threads 3.43 at 2**20 against 3.90 at 2**19 and 4.22 at 2**21."""
    return (1 << 19) * min(max(torch.get_num_threads(), 1), 4)


class Workspace:
    """Buffers reused from chunk to chunk: a fresh multi-megabyte tensor per chunk costs the page
    faults of a new allocation each time (about a quarter of the time on the CPU)."""

    def __init__(self) -> None:
        self._buffers: dict[str, Tensor] = {}

    def get(self, name: str, shape: tuple[int, ...], dtype: torch.dtype, device: torch.device) -> Tensor:
        """A contiguous tensor of ``shape`` (uninitialized), carved from the named buffer."""
        numel = math.prod(shape)
        buffer = self._buffers.get(name)
        if buffer is None or buffer.numel() < numel or buffer.dtype != dtype or buffer.device != device:
            buffer = self._buffers[name] = torch.empty(numel, dtype=dtype, device=device)
        return buffer[:numel].view(shape)


def divergence_curve(
    x: Tensor, emb_dim: int, lag: int, min_tsep: int, trajectory_len: int, neighbours: str = "nolds",
    workspace: Workspace | None = None,
) -> tuple[Tensor, Tensor]:
    """Mean log distance between nearest-neighbour pairs after k = 0..trajectory_len-1 steps.

    ``x`` is ``(N, B)``, one series per column (for the TISEAN rule, already rescaled to [0, 1]);
    returns the curve ``(B, trajectory_len)`` and ``(B,)`` whether the TISEAN search would never
    finish. Every intermediate is laid out with the series last, so each pass is an element-wise
    or reduction kernel along contiguous memory. Memory is ``O(B * M**2)``: callers chunk over B
    (and may pass one ``workspace`` for every chunk).
    """
    workspace = workspace or Workspace()
    x = x.contiguous()
    n, b = x.shape
    reach = (emb_dim - 1) * lag
    ntraj = n - reach - trajectory_len + 1

    # Squared distance between embedded vectors i and j (both < ntraj): the sum over embedding
    # coordinates e of the squared scalar differences (x[i + e*lag] - x[j + e*lag])**2, which are
    # entries of one matrix of squared differences shifted along its diagonal. Added without
    # fused multiply-adds and in the order of the reference, so the rounding is the same.
    add = _sequential_sum if neighbours == "tisean" else _numpy_sum
    head = x[: ntraj + reach]
    width = ntraj + reach
    sq_diff = _squared_difference(head[:, None, :].expand(width, width, b), head[None, :, :].expand(width, width, b),
                                  workspace.get("sq_diff", (width, width, b), x.dtype, x.device))
    dist2 = add([sq_diff[e * lag : e * lag + ntraj, e * lag : e * lag + ntraj] for e in range(emb_dim)],
                out=workspace.get("dist2", (ntraj, ntraj, b), x.dtype, x.device))
    for offset in range(-min(min_tsep, ntraj - 1), min(min_tsep, ntraj - 1) + 1):
        dist2.diagonal(offset, dim1=0, dim2=1).fill_(float("inf"))  # |i - j| <= min_tsep
    if neighbours == "tisean":
        found = nearest_tisean_columns(dist2, x, reach)
        neighbour = found.index
        references = ntraj - min_tsep  # lyap_r's reference loop ends min_tsep vectors early
        used = found.paired[:references]
        stuck = found.stuck[:references].any(dim=0)
    else:
        neighbour, references, used = nearest_nolds_columns(dist2), ntraj, None
        stuck = torch.zeros(b, dtype=torch.bool, device=x.device)

    # Follow each pair (i, neighbour[i]) for trajectory_len steps: both trajectories are windows
    # of `span` points of the series; step_sq[i, k, :] is the squared difference of the pair's
    # k-th points, (references, span, B).
    span = trajectory_len + reach
    series_first = span >= SERIES_FIRST_SPAN
    if series_first:
        # Long windows: the neighbours' windows picked series first by advanced indexing (several
        # times faster than a gather along batch-last windows), the result viewed as
        # (references, span, B): every pass below then runs along runs of `span` points.
        windows = x.T.contiguous().unfold(1, span, 1)  # (B, n - span + 1, span), windows[b, j, k] = x[j + k, b]
        rows = torch.arange(b, device=x.device)[:, None]
        step_sq = _squared_difference(windows[rows, neighbour[:references].T], windows[:, :references],
                                      workspace.get("step_sq", (b, references, span), x.dtype, x.device))
        step_sq = step_sq.permute(1, 2, 0)
    else:
        # Short windows: gathered batch last (windows[j, k, b] = x[j + k, b], a view), so every
        # pass runs along the batch; series first, runs of a few points would cost more.
        windows = x.as_strided((n - span + 1, span, b), (b, b, 1))
        index = neighbour[:references, None, :].expand(references, span, b)
        neighbour_windows = torch.gather(windows, 0, index, out=workspace.get("gathered", (references, span, b),
                                                                             x.dtype, x.device))
        step_sq = _squared_difference(neighbour_windows, windows[:references],
                                      workspace.get("step_sq", (references, span, b), x.dtype, x.device))

    def pair_log_dist2() -> Tensor:
        """log d**2 of every pair at every step, (references, trajectory_len, B), a fresh tensor
        laid out in memory as step_sq is."""
        terms = [step_sq[:, e * lag : e * lag + trajectory_len] for e in range(emb_dim)]
        if series_first:
            out = torch.empty((b, references, trajectory_len), dtype=x.dtype, device=x.device).permute(1, 2, 0)
        else:
            out = torch.empty((references, trajectory_len, b), dtype=x.dtype, device=x.device)
        pair_dist2 = add(terms, out=out) if emb_dim > 1 else out.copy_(terms[0])
        if used is not None:
            pair_dist2.masked_fill_(~used[:, None, :], 1.0)  # unpaired: log 1 = 0, and not counted
        return pair_dist2.log_()

    # Pairs at distance zero are left out of that step's mean: their log, -inf, counts as 0.
    # Such pairs are rare (duplicates in the data), so the sum is taken first and only a chunk
    # where some step's sum is not finite (a zero, an overflowing distance, or both: inf - inf
    # is NaN) looks at each term.
    # Summed by _tree_sum, not torch.sum: torch's sum groups the terms by the shapes, and the
    # result must not depend on how the batch is chunked (nor on the layout above).
    total = _tree_sum(pair_log_dist2())  # (trajectory_len, B)
    if not bool(torch.isfinite(total).all()):
        log_dist2 = pair_log_dist2()
        counted = log_dist2 != float("-inf")  # NaN counts, so a NaN stays NaN
        if used is not None:
            counted &= used[:, None, :]
        count = counted.sum(dim=0, dtype=x.dtype)
        total = _tree_sum(log_dist2.masked_fill_(log_dist2 == float("-inf"), 0.0))
    elif used is not None:
        count = used.sum(dim=0, dtype=x.dtype)[None, :].expand(trajectory_len, b)
    else:
        count = torch.full((trajectory_len, b), float(references), dtype=x.dtype, device=x.device)
    mean_log = total.mul_(0.5) / count.clamp(min=1.0)  # log d = log(d**2) / 2
    return mean_log.masked_fill_(count == 0, float("-inf")).T, stuck


def _squared_difference(a: Tensor, b: Tensor, out: Tensor) -> Tensor:
    """``(a - b)**2`` rounded as ``d = a - b; d * d`` (no fused multiply-add), into ``out``:
    the element-wise kernel of ``mse_loss`` without its reduction, one pass instead of two.
    ``a`` and ``b`` have out's shape (expanded views, so the loss sees no broadcasting)."""
    return torch.ops.aten.mse_loss.out(a, b, 0, out=out)


def _tree_sum(terms: Tensor) -> Tensor:
    """The sum over dim 0 by halving in place (the second half added onto the first), a fixed
    order for every column whatever the other dimensions; ``terms`` is overwritten."""
    remaining = terms.shape[0]
    while remaining > 1:
        half = remaining // 2
        terms[:half].add_(terms[remaining - half : remaining])
        remaining -= half
    return terms[0]


def _sequential_sum(terms: list[Tensor], out: Tensor | None = None) -> Tensor:
    """``((t0 + t1) + t2) + ...``: TISEAN's loop, and numpy's sum of fewer than 8 terms (into
    ``out`` when given: the same additions, in place)."""
    if out is None:
        total = terms[0]
        for term in terms[1:]:
            total = total + term
        return total
    if len(terms) == 1:
        return out.copy_(terms[0])
    torch.add(terms[0], terms[1], out=out)
    for term in terms[2:]:
        out.add_(term)
    return out


def _numpy_sum(terms: list[Tensor], out: Tensor | None = None) -> Tensor:
    """The terms added in the order of numpy's pairwise sum along a contiguous axis (what
    nolds' ``np.sum(..., axis=1)`` does over the embedding coordinates): sequential below 8
    terms; up to 128, eight running sums combined as a tree, then the remainder in order;
    above, the two halves (split at a multiple of 8) summed separately."""
    n = len(terms)
    if n < 8:
        return _sequential_sum(terms, out)
    if out is not None:
        return out.copy_(_numpy_sum(terms))
    if n > 128:
        half = n // 2 - (n // 2) % 8
        return _numpy_sum(terms[:half]) + _numpy_sum(terms[half:])
    lanes = list(terms[:8])
    for start in range(8, n - n % 8, 8):
        lanes = [lane + term for lane, term in zip(lanes, terms[start : start + 8])]
    total = ((lanes[0] + lanes[1]) + (lanes[2] + lanes[3])) + ((lanes[4] + lanes[5]) + (lanes[6] + lanes[7]))
    return _sequential_sum([total, *terms[n - n % 8 :]])


def _least_squares_slope(curve: Tensor, fit_offset: int) -> Tensor:
    """Slope of the straight line fitted to the finite points of each curve, skipping the first
    ``fit_offset`` of them (nolds drops -inf points first, then applies the offset). Off the CPU:
    there, ``rosenstein_loop.least_squares_slopes`` does the same in one pass per row."""
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
    x: Tensor,
    emb_dim: int,
    lag: int,
    min_tsep: int,
    trajectory_len: int,
    fit: str,
    fit_offset: int,
    neighbours: str,
    backend: str = "auto",
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
    if neighbours not in RULES:
        raise UserError(f"unknown neighbours rule {neighbours!r}: choose one of {', '.join(RULES)}")
    if backend not in BACKENDS:
        raise UserError(f"unknown backend {backend!r}: choose one of {', '.join(BACKENDS)}")
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
