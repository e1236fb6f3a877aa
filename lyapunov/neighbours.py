"""Which neighbour each reference vector is paired with, by the rule of nolds or of TISEAN.

Both rules take squared Euclidean distances ``dist2`` ``(B, M, M)`` between the M embedded
vectors that can be followed for the whole trajectory, with ``inf`` where two vectors are
within the Theiler window (``|i - j| <= min_tsep``).

**nolds** (``lyap_r`` 0.6.2): the neighbour is ``argmin_j sqrt(dist2[i, j])`` (numpy keeps the
lowest index among equal values; its ``sqrt`` is correctly rounded, so distinct squared
distances whose roots round alike are ties too). A neighbour at distance zero is allowed.

**TISEAN** (``lyap_r.c``, Hegger 2002): the series is first rescaled to [0, 1] (see
:func:`rescale_unit`); the search runs over growing radii ``eps = 1e-3 * 1.1**k`` and a
256 x 256 grid of boxes of side ``eps`` over the first and last delay coordinates. A reference
is settled at the first radius within which it has any candidate ``j`` (``|i - j| > min_tsep``,
``dist2 <= eps**2`` and ``dist2 < 1``, the search's starting minimum). Its neighbour is the
nearest candidate at a *positive* distance; equal squared distances go to the first one
visited: boxes in the order (x-1, y-1), (x-1, y), ..., (x+1, y+1) around the reference's box,
and within a box the highest index first. A reference whose candidates at the settling radius
are all exact duplicates gets no neighbour and is left out of every step's mean. A reference
with no candidate at all below 1 makes TISEAN search forever; it is reported as ``stuck``.
"""

from typing import NamedTuple

import torch
from torch import Tensor

from lyapunov.exact_roots import tie_limit

RULES = ("nolds", "tisean")
# Above every tie limit: a square root's rounding interval spans less than 2**-51 of the square.
ABOVE_TIE_LIMIT = 1.0 + 2.0**-49

TISEAN_EPS0 = 1e-3  # lyap_r's starting radius without -r, in rescaled units
TISEAN_GROWTH = 1.1  # the radius grows by this factor per pass


def nearest_nolds(dist2: Tensor) -> Tensor:
    """Index ``(B, M)`` of each reference's nearest neighbour, the earliest among ties of the
    correctly rounded distance (nolds' ``argmin`` over ``sqrt(dist2)``), for ``dist2`` ``(B, M, M)``
    (see :func:`nearest_nolds_columns`, which this calls on a view)."""
    return nearest_nolds_columns(dist2.permute(1, 2, 0)).T


def nearest_nolds_columns(dist2: Tensor) -> Tensor:
    """:func:`nearest_nolds` for distances laid out ``(M, M, B)`` (reference, candidate, series:
    the batch is the contiguous dimension, so every pass vectorizes across series); returns
    ``(M, B)``. Found without taking M*M square roots: an entry ties with the nearest iff it is at
    most the largest float64 whose root rounds to the nearest distance."""
    nearest = dist2.amin(dim=1)
    # The exact limit costs some twenty passes over (M, B); a bound just above it costs one. The
    # first candidate within the bound is the answer whenever it sits at the nearest distance
    # itself (always, but on data with near-ties); the other references get the exact limit.
    index = first_at_most(dist2, (nearest * ABOVE_TIE_LIMIT)[:, None])
    refs, rows = (dist2.gather(1, index[:, None]).squeeze(1) != nearest).nonzero(as_tuple=True)
    if refs.numel():
        limit = tie_limit(nearest[refs, rows])
        index[refs, rows] = first_at_most(dist2[refs, :, rows].T[None], limit[None, None]).squeeze(0)
    return index


def first_at_most(dist2: Tensor, limit: Tensor) -> Tensor:
    """For ``dist2`` ``(M, M, B)`` and ``limit`` ``(M, 1, B)``: the first candidate j with
    ``dist2[i, j, b] <= limit[i, 0, b]`` (0 where there is none, as ``argmax`` of all-False)."""
    return first_true(dist2 <= limit)


def first_true(mask: Tensor) -> Tensor:
    """For a bool ``mask`` ``(M, M, B)``: the first j with ``mask[i, j, b]``, ``(M, B)`` (0 where
    there is none). Ranked as ``M - j`` in the narrowest integer type, so the first is the
    maximum: one multiply and one max over bytes (torch's ``argmax`` along a non-contiguous
    dimension, and ``where``, are several times slower)."""
    m = mask.shape[1]
    dtype = torch.uint8 if m < 1 << 8 else torch.int16 if m < 1 << 15 else torch.int32
    rank = torch.arange(m, 0, -1, dtype=dtype, device=mask.device)[None, :, None]
    best = torch.mul(mask.view(torch.uint8), rank).amax(dim=1)
    return torch.rsub(best.long(), m).masked_fill_(best == 0, 0)  # m - best; none found (best 0): 0


class TiseanNeighbours(NamedTuple):
    index: Tensor  # (B, M) chosen neighbour (arbitrary where ``paired`` is False)
    paired: Tensor  # (B, M) bool: the reference contributes to the divergence curve
    stuck: Tensor  # (B, M) bool: no candidate below 1, where TISEAN never finishes


def rescale_unit(x: Tensor, dim: int = 1) -> Tensor:
    """Each series (along ``dim``: rows by default) mapped to [0, 1] as TISEAN's
    ``rescale_data``: ``(x - min) / (max - min)``, with the same two roundings (which is why
    ties in the input may not be ties after)."""
    low = x.amin(dim=dim, keepdim=True)
    return (x - low) / (x.amax(dim=dim, keepdim=True) - low)


def _tisean_radii() -> tuple[list[float], list[float]]:
    """Per pass k: the squared radius ``eps * eps`` and ``1 / eps`` as lyap_r computes them
    (repeated multiplication in double precision), up to the first pass whose squared radius
    reaches 1, beyond which no candidate below 1 can be missed."""
    eps, squared, inverse = TISEAN_EPS0, [], []
    while True:
        squared.append(eps * eps)
        inverse.append(1.0 / eps)
        if eps * eps >= 1.0:
            return squared, inverse
        eps *= TISEAN_GROWTH


TISEAN_RADII2, TISEAN_INVERSE_RADII = _tisean_radii()


def nearest_tisean(dist2: Tensor, unit: Tensor, reach: int) -> TiseanNeighbours:
    """TISEAN's choice for every reference, for ``dist2`` ``(B, M, M)`` and the rescaled series
    ``unit`` ``(B, N)``; fields ``(B, M)`` (see :func:`nearest_tisean_columns`, called on views)."""
    found = nearest_tisean_columns(dist2.permute(1, 2, 0), unit.T, reach)
    return TiseanNeighbours(*(field.T for field in found))


def nearest_tisean_columns(dist2: Tensor, unit: Tensor, reach: int) -> TiseanNeighbours:
    """TISEAN's choice for every reference, from squared distances ``(M, M, B)`` (reference,
    candidate, series) on the rescaled series ``unit`` ``(N, B)`` (one series per column);
    ``reach = (emb_dim - 1) * lag`` locates the last delay coordinate. Fields are ``(M, B)``."""
    m = dist2.shape[0]
    inf = float("inf")
    nearest_any = dist2.amin(dim=1)
    stuck = ~(nearest_any < 1.0)  # the search keeps only distances below 1 (and NaN is stuck too)
    # Equal squared distances go to the first candidate visited: a reference has a tie iff more
    # than one candidate sits at its minimum. Ties are rare outside rounded data; the first one
    # is a placeholder for them, ranked properly below.
    at_min = dist2 <= nearest_any[:, None]
    count_dtype = torch.uint8 if m < 1 << 8 else torch.int32
    tied = at_min.view(torch.uint8).sum(dim=1, dtype=count_dtype) > 1
    index = first_true(at_min)
    nearest = nearest_any.clone()
    # A duplicate settles its reference on the first pass; the neighbour must then be a
    # positive distance within that pass's radius. Duplicates are rare: only those rows.
    refs, rows = (nearest_any == 0).nonzero(as_tuple=True)
    if refs.numel():
        positive = dist2[refs, :, rows]
        positive = torch.where(positive > 0, positive, inf)
        nearest[refs, rows], index[refs, rows] = positive.min(dim=1)
        tied[refs, rows] = (positive == nearest[refs, rows][:, None]).sum(dim=1) > 1
    paired = (nearest < 1.0) & ((nearest_any > 0) | (nearest <= TISEAN_RADII2[0]))

    # Only the references that have ties are ranked (one host sync per chunk); unpaired
    # references need no neighbour.
    refs, rows = (tied & paired).nonzero(as_tuple=True)
    if refs.numel():
        radii2 = dist2.new_tensor(TISEAN_RADII2)
        # Settled on the first pass whose radius covers a candidate (the last pass covers all).
        settled = torch.searchsorted(radii2, nearest_any[refs, rows].contiguous()).clamp_(max=len(TISEAN_RADII2) - 1)
        inverse = dist2.new_tensor(TISEAN_INVERSE_RADII)[settled][:, None]  # 1/eps of that pass
        # Box indices without TISEAN's wrap-around: a tied candidate is within eps in every
        # coordinate, so its box differs from the reference's by -1, 0 or 1 either way. The
        # visit order is (x box, y box, -index); the reference's own box is the same constant
        # in every entry of a row, so it drops out of the argmin.
        box_x = torch.floor(unit[:m, rows].T * inverse)
        box_y = torch.floor(unit[reach : reach + m, rows].T * inverse)
        order = torch.arange(m, device=dist2.device, dtype=dist2.dtype)
        key = box_x * (3 * m) + box_y * m - order
        at_nearest = dist2[refs, :, rows] == nearest[refs, rows][:, None]
        index[refs, rows] = torch.where(at_nearest, key, inf).argmin(dim=1)
    return TiseanNeighbours(index, paired, stuck)
