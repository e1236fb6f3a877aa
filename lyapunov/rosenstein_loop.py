"""Rosenstein's divergence curves, one series at a time in a compiled loop.

The tensor passes of :func:`lyapunov.rosenstein.divergence_curve` hold every pairwise distance of
a chunk of series in memory and walk over it a dozen times; on a CPU that traffic, not the
arithmetic, is the time. Here numba compiles a loop that takes one series at a time, keeps its
rows of distances in cache, and runs on ``torch.get_num_threads()`` threads (contiguous shares of
the batch, the GIL released). Measured on 2 cores with windows of 50 points, whole
``largest_lyapunov`` calls at 2 threads: the nolds rule (trajectory_len 20) 1.7-1.9 us per window
against 3.5-3.8 for the tensor passes; TISEAN's (trajectory_len 4) 2.4 against 5.0
(``benchmarks/lyapunov_vs_nolds.py`` prints both).

The pairs are the tensor passes' (tested), by either rule (see :mod:`lyapunov.neighbours`):
squared distances are added over the embedding coordinates in the reference's order (numpy's
for nolds, one after another for TISEAN) without fused multiply-adds; nolds' neighbour is the
earliest candidate whose correctly rounded distance is the smallest (numba's ``sqrt`` is the
IEEE one), TISEAN's the nearest at a positive distance below 1, ties in its visiting order.

The mean log distance differs from the tensor passes in rounding only (about 1e-16 on the curve):
instead of one logarithm per pair, the squared distances of up to BLOCK pairs are multiplied and
one logarithm is taken of the product, ``sum(log d2) = log(prod d2)``. Products of BLOCK factors
in [2**-62, 2**62] can neither overflow nor lose precision to subnormals; a block where some
step's factor lies outside that range (or is not finite) takes that step's logarithms one by one.
"""

import math
from concurrent.futures import ThreadPoolExecutor

import numba
import numpy as np

from lyapunov.neighbours import ABOVE_TIE_LIMIT, TISEAN_INVERSE_RADII, TISEAN_RADII2

BLOCK = 16  # pairs per product; BLOCK * 62 < 1022 keeps every product a normal float
_LOW, _HIGH = 2.0**-62, 2.0**62
_TISEAN_RADII2, _TISEAN_INVERSE_RADII = np.array(TISEAN_RADII2), np.array(TISEAN_INVERSE_RADII)
SEQUENTIAL_TERMS = 8  # numpy adds fewer terms than this one after another
MAX_EMB_DIM = 128  # numpy's pairwise sum is one block up to here (beyond, the tensor passes)


@numba.njit(cache=True, error_model="numpy")
def _numpy_order_sum(terms: np.ndarray) -> float:
    """numpy's pairwise sum of SEQUENTIAL_TERMS to MAX_EMB_DIM terms: eight running sums combined as
    a tree, then the remainder in order (see ``rosenstein._numpy_sum``; above MAX_EMB_DIM numpy
    splits the terms in halves, recursively)."""
    count = len(terms)
    lanes = terms[:8].copy()
    end = count - count % 8
    for i in range(8, end, 8):
        for lane in range(8):
            lanes[lane] += terms[i + lane]
    total = ((lanes[0] + lanes[1]) + (lanes[2] + lanes[3])) + ((lanes[4] + lanes[5]) + (lanes[6] + lanes[7]))
    for i in range(end, count):
        total += terms[i]
    return total


@numba.njit(cache=True, inline="always", error_model="numpy")
def _squared_distances(x, a, a_moves, b, count, emb_dim, lag, out, terms):
    """``out[t] = |X[a + t * a_moves] - X[b + t]|**2`` for t < count, X the delay vectors of x:
    a row of candidates for a fixed reference (``a_moves`` 0) or a pair followed in time (1).
    ``terms`` is None below SEQUENTIAL_TERMS coordinates: numba then compiles a version without
    the pairwise branch, whose mere presence costs the loops below their vectorization."""
    if terms is not None:
        for t in range(count):
            for e in range(emb_dim):
                d = x[a + t * a_moves + e * lag] - x[b + t + e * lag]
                terms[e] = d * d
            out[t] = _numpy_order_sum(terms)
    elif a_moves:
        # Coordinate by coordinate, so that each pass is a loop over t that vectorizes; each
        # entry's sum still runs over the coordinates in order, as numpy's below eight terms.
        for t in range(count):
            d = x[a + t] - x[b + t]
            out[t] = d * d
        for e in range(1, emb_dim):
            for t in range(count):
                d = x[a + t + e * lag] - x[b + t + e * lag]
                out[t] += d * d
    else:
        reference = x[a]
        for t in range(count):
            d = reference - x[b + t]
            out[t] = d * d
        for e in range(1, emb_dim):
            reference = x[a + e * lag]
            for t in range(count):
                d = reference - x[b + t + e * lag]
                out[t] += d * d


@numba.njit(cache=True, inline="always", error_model="numpy")
def _smallest(row, count):
    """min(row[:count]) with four running minima (one chain of compares would be four times longer)."""
    a = b = c = d = np.inf
    end = count - count % 4
    for j in range(0, end, 4):
        a = min(a, row[j])
        b = min(b, row[j + 1])
        c = min(c, row[j + 2])
        d = min(d, row[j + 3])
    for j in range(end, count):
        a = min(a, row[j])
    return min(min(a, b), min(c, d))


@numba.njit(cache=True, inline="always", error_model="numpy")
def _nearest_neighbours(x, m, emb_dim, lag, min_tsep, neighbour, row, terms):
    """nolds' ``argmin`` over the rounded distances of each of the m references to the m
    candidates, with the Theiler window ``|i - j| <= min_tsep`` at infinity."""
    for i in range(m):
        _squared_distances(x, i, 0, 0, m, emb_dim, lag, row, terms)
        for j in range(max(0, i - min_tsep), min(m, i + min_tsep + 1)):
            row[j] = np.inf
        nearest = _smallest(row, m)
        # The first candidate whose root rounds as the nearest's: only those within the bound
        # can, and the root is taken only for the few that are not the nearest itself.
        bound = nearest * ABOVE_TIE_LIMIT
        neighbour[i] = 0  # numpy's argmin of a row at infinity (or NaN: a degenerate series)
        for j in range(m):
            if row[j] <= bound and (row[j] == nearest or math.sqrt(row[j]) == math.sqrt(nearest)):
                neighbour[i] = j
                break


@numba.njit(cache=True, inline="always", error_model="numpy")
def _tisean_neighbours(u, references, m, emb_dim, lag, min_tsep, neighbour, paired, row):
    """TISEAN's choice for each of the first ``references`` references of the rescaled series u
    (see :mod:`lyapunov.neighbours`): the nearest candidate at a positive distance below 1, no
    neighbour for a duplicate whose other candidates lie beyond the first radius, ties in
    TISEAN's visiting order. Returns whether some reference would make TISEAN search forever."""
    stuck = False
    for i in range(references):
        _squared_distances(u, i, 0, 0, m, emb_dim, lag, row, None)  # TISEAN adds in order
        for j in range(max(0, i - min_tsep), min(m, i + min_tsep + 1)):
            row[j] = np.inf
        nearest_any = _smallest(row, m)
        stuck |= not nearest_any < 1.0  # the search keeps only distances below 1 (NaN too)
        nearest = nearest_any
        if nearest_any == 0.0:  # a duplicate: the neighbour is the nearest at a positive distance
            nearest = np.inf
            for j in range(m):
                if 0.0 < row[j] < nearest:
                    nearest = row[j]
        paired[i] = nearest < 1.0 and (nearest_any > 0.0 or nearest <= _TISEAN_RADII2[0])
        neighbour[i] = 0
        if not paired[i]:
            continue
        ties = 0
        for j in range(m):
            if row[j] == nearest:
                if ties == 0:
                    neighbour[i] = j
                ties += 1
        if ties > 1:
            neighbour[i] = _first_visited(u, row, nearest, nearest_any, m, (emb_dim - 1) * lag)
    return stuck


@numba.njit(cache=True, inline="always", error_model="numpy")
def _first_visited(u, row, nearest, nearest_any, m, reach):
    """Among the candidates at ``nearest``, the one TISEAN visits first at the radius that
    settles the reference: lowest box of the first delay coordinate, then of the last, then the
    highest index (each box lists its vectors from the highest index down)."""
    settled = 0
    while settled < len(_TISEAN_RADII2) - 1 and _TISEAN_RADII2[settled] < nearest_any:
        settled += 1
    inverse = _TISEAN_INVERSE_RADII[settled]
    best, best_x, best_y = -1, 0.0, 0.0
    for j in range(m):
        if row[j] == nearest:
            box_x, box_y = math.floor(u[j] * inverse), math.floor(u[j + reach] * inverse)
            if best < 0 or box_x < best_x or (box_x == best_x and box_y <= best_y):
                best, best_x, best_y = j, box_x, box_y
    return best


@numba.njit(cache=True, inline="always", error_model="numpy")
def _follow_pairs(x, references, paired, emb_dim, lag, trajectory_len, neighbour, stash, product, outside, log_sum,
                  pairs, terms):
    """Sum over the paired references' pairs of log d**2 at each step, and how many pairs were at
    a positive distance."""
    log_sum[:] = 0.0
    pairs[:] = 0
    product[:] = 1.0
    outside[:] = False
    slot = -1
    for i in range(references):
        if not paired[i]:
            continue
        slot += 1
        step = stash[slot]
        _squared_distances(x, i, 1, neighbour[i], trajectory_len, emb_dim, lag, step, terms)
        for k in range(trajectory_len):
            d2 = step[k]
            positive = d2 != 0.0  # a pair at distance zero is left out of the mean, as nolds
            pairs[k] += positive
            product[k] *= d2 if positive else 1.0
            outside[k] |= positive and not (_LOW <= d2 <= _HIGH)
        if slot == BLOCK - 1:
            _add_block_logs(stash, slot, trajectory_len, product, outside, log_sum)
            slot = -1
    if slot >= 0:
        _add_block_logs(stash, slot, trajectory_len, product, outside, log_sum)


@numba.njit(cache=True, inline="always", error_model="numpy")
def _add_block_logs(stash, slot, trajectory_len, product, outside, log_sum):
    """Add a block's logarithms: of its product, or one by one where a factor was outside the range."""
    for k in range(trajectory_len):
        if outside[k]:
            for s in range(slot + 1):
                if stash[s, k] != 0.0:
                    log_sum[k] += math.log(stash[s, k])
        else:
            log_sum[k] += math.log(product[k])
        product[k] = 1.0
        outside[k] = False


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _curves(series, emb_dim, lag, min_tsep, trajectory_len, tisean, skip, curve, stuck, terms):
    count, n = series.shape
    m = n - (emb_dim - 1) * lag - trajectory_len + 1
    references = m - min_tsep if tisean else m  # TISEAN's reference loop ends min_tsep vectors early
    neighbour = np.empty(m, np.int64)
    paired = np.ones(m, np.bool_)
    row = np.empty(m)
    unit = np.empty(n)
    stash = np.empty((BLOCK, trajectory_len))
    product = np.empty(trajectory_len)
    outside = np.empty(trajectory_len, np.bool_)
    log_sum = np.empty(trajectory_len)
    pairs = np.empty(trajectory_len, np.int64)
    for s in range(count):
        stuck[s] = False
        if skip[s]:
            curve[s, :] = np.nan
            continue
        x = series[s]
        if tisean:
            low, high = x.min(), x.max()
            for t in range(n):
                unit[t] = (x[t] - low) / (high - low)  # TISEAN's rescale_data, its two roundings
            x = unit
            stuck[s] = _tisean_neighbours(x, references, m, emb_dim, lag, min_tsep, neighbour, paired, row)
        else:
            _nearest_neighbours(x, m, emb_dim, lag, min_tsep, neighbour, row, terms)
        _follow_pairs(x, references, paired, emb_dim, lag, trajectory_len, neighbour, stash, product, outside,
                      log_sum, pairs, terms)
        for k in range(trajectory_len):
            curve[s, k] = -np.inf if pairs[k] == 0 else 0.5 * log_sum[k] / pairs[k]  # log d = log(d**2) / 2


def divergence_curves(series: np.ndarray, emb_dim: int, lag: int, min_tsep: int, trajectory_len: int,
                      neighbours: str = "nolds", skip: np.ndarray | None = None,
                      threads: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Mean log distance of the pairs after k = 0..trajectory_len-1 steps, for float64 ``series``
    ``(count, N)`` (one series per row), by the ``neighbours`` rule ("nolds", or "tisean" on the
    series rescaled to [0, 1] here): ``(count, trajectory_len)``, -inf where every pair is at
    distance zero, NaN for the rows ``skip`` marks; and ``(count,)`` whether TISEAN's search
    would never end (always False for nolds). The rows are split into ``threads`` contiguous
    shares run side by side."""
    series = np.ascontiguousarray(series, dtype=np.float64)
    count = series.shape[0]
    skip = np.zeros(count, np.bool_) if skip is None else np.ascontiguousarray(skip, dtype=np.bool_)
    curve, stuck = np.empty((count, trajectory_len)), np.empty(count, np.bool_)
    args = (emb_dim, lag, min_tsep, trajectory_len, neighbours == "tisean")
    # numpy's pairwise order from eight coordinates (TISEAN adds them in order, whatever their number)
    pairwise = emb_dim >= SEQUENTIAL_TERMS and neighbours == "nolds"

    def share(a: int, b: int) -> None:
        _curves(series[a:b], *args, skip[a:b], curve[a:b], stuck[a:b], np.empty(emb_dim) if pairwise else None)

    shares = max(1, min(threads, count))
    if shares == 1:
        share(0, count)
    else:
        bounds = np.linspace(0, count, shares + 1).astype(int)
        with ThreadPoolExecutor(shares) as pool:
            list(pool.map(share, bounds[:-1], bounds[1:]))
    return curve, stuck


@numba.njit(cache=True, error_model="numpy")
def _slopes(curve, fit_offset, out):
    for r in range(curve.shape[0]):
        count, seen, k_sum, y_sum = 0, 0, 0.0, 0.0
        for k in range(curve.shape[1]):
            if math.isfinite(curve[r, k]):
                if seen >= fit_offset:
                    count += 1
                    k_sum += k
                    y_sum += curve[r, k]
                seen += 1
        if count < 2:
            out[r] = np.nan
            continue
        k_mean, y_mean = k_sum / count, y_sum / count
        numerator, denominator, seen = 0.0, 0.0, 0
        for k in range(curve.shape[1]):
            if math.isfinite(curve[r, k]):
                if seen >= fit_offset:
                    centered = k - k_mean
                    numerator += centered * (curve[r, k] - y_mean)
                    denominator += centered * centered
                seen += 1
        out[r] = numerator / denominator


def least_squares_slopes(curve: np.ndarray, fit_offset: int) -> np.ndarray:
    """Slope of the straight line fitted to each row's finite points of ``curve`` ``(rows, T)``,
    skipping the first ``fit_offset`` of them; NaN where fewer than two remain. The CPU's form of
    ``rosenstein._least_squares_slope`` (same arithmetic, each row's sums in order): on rows of a
    few dozen points a dozen tensor passes cost about a sixth of the whole computation."""
    curve = np.ascontiguousarray(curve, dtype=np.float64)
    out = np.empty(curve.shape[0])
    _slopes(curve, fit_offset, out)
    return out
