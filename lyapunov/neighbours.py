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

TISEAN_EPS0 = 1e-3  # lyap_r's starting radius without -r, in rescaled units
TISEAN_GROWTH = 1.1  # the radius grows by this factor per pass


def nearest_nolds(dist2: Tensor) -> Tensor:
    """Index ``(B, M)`` of each reference's nearest neighbour, the earliest among ties of the
    correctly rounded distance (nolds' ``argmin`` over ``sqrt(dist2)``), found without taking
    M*M square roots: an entry ties with the nearest iff it is at most the largest float64
    whose root rounds to the nearest distance."""
    limit = tie_limit(dist2.amin(dim=2, keepdim=True))
    return (dist2 <= limit).view(torch.uint8).argmax(dim=2)


class TiseanNeighbours(NamedTuple):
    index: Tensor  # (B, M) chosen neighbour (arbitrary where ``paired`` is False)
    paired: Tensor  # (B, M) bool: the reference contributes to the divergence curve
    stuck: Tensor  # (B, M) bool: no candidate below 1, where TISEAN never finishes


def rescale_unit(x: Tensor) -> Tensor:
    """Each row mapped to [0, 1] as TISEAN's ``rescale_data``: ``(x - min) / (max - min)``,
    with the same two roundings (which is why ties in the input may not be ties after)."""
    low = x.amin(dim=1, keepdim=True)
    return (x - low) / (x.amax(dim=1, keepdim=True) - low)


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


_RADII2, _INVERSE_RADII = _tisean_radii()


def nearest_tisean(dist2: Tensor, unit: Tensor, reach: int, workspace=None) -> TiseanNeighbours:
    """TISEAN's choice for every reference, from squared distances on the rescaled series
    ``unit`` ``(B, N)``; ``reach = (emb_dim - 1) * lag`` locates the last delay coordinate.
    ``workspace`` (a ``rosenstein.Workspace``) lends the large temporaries."""
    b, m = dist2.shape[:2]
    inf = float("inf")
    if workspace is None:
        nearest_any, index = dist2.min(dim=2)
    else:
        nearest_any, index = torch.min(dist2, dim=2, out=(workspace.get("nearest", (b, m), dist2.dtype, dist2.device),
                                                          workspace.get("index", (b, m), torch.long, dist2.device)))
    stuck = ~(nearest_any < 1.0)  # the search keeps only distances below 1 (and NaN is stuck too)
    nearest = nearest_any.clone()
    # Equal squared distances go to the first candidate visited. A reference has a tie iff the
    # smallest of its other candidates equals the one min() picked: hide the pick, take the
    # minimum again (one pass instead of an equality mask and a count), put the pick back.
    picked = index[:, :, None]
    dist2.scatter_(2, picked, inf)
    tied = dist2.amin(dim=2) == nearest_any
    dist2.scatter_(2, picked, nearest_any[:, :, None])
    # A duplicate settles its reference on the first pass; the neighbour must then be a
    # positive distance within that pass's radius. Duplicates are rare: only those rows.
    rows, refs = (nearest_any == 0).nonzero(as_tuple=True)
    if rows.numel():
        positive = dist2[rows, refs]
        positive = torch.where(positive > 0, positive, inf)
        nearest[rows, refs], index[rows, refs] = positive.min(dim=1)
        tied[rows, refs] = (positive == nearest[rows, refs][:, None]).sum(dim=1) > 1
    paired = (nearest < 1.0) & ((nearest_any > 0) | (nearest <= _RADII2[0]))

    # Ties are rare outside rounded data, so only the references that have some are ranked (one
    # host sync per chunk); unpaired references need no neighbour.
    rows, refs = (tied & paired).nonzero(as_tuple=True)
    if rows.numel():
        radii2 = dist2.new_tensor(_RADII2)
        # Settled on the first pass whose radius covers a candidate (the last pass covers all).
        settled = torch.searchsorted(radii2, nearest_any[rows, refs].contiguous()).clamp_(max=len(_RADII2) - 1)
        inverse = dist2.new_tensor(_INVERSE_RADII)[settled][:, None]  # 1/eps of that pass
        # Box indices without TISEAN's wrap-around: a tied candidate is within eps in every
        # coordinate, so its box differs from the reference's by -1, 0 or 1 either way. The
        # visit order is (x box, y box, -index); the reference's own box is the same constant
        # in every entry of a row, so it drops out of the argmin.
        box_x = torch.floor(unit[rows, :m] * inverse)
        box_y = torch.floor(unit[rows, reach : reach + m] * inverse)
        order = torch.arange(m, device=dist2.device, dtype=dist2.dtype)
        key = box_x * (3 * m) + box_y * m - order
        at_nearest = dist2[rows, refs] == nearest[rows, refs][:, None]
        index[rows, refs] = torch.where(at_nearest, key, inf).argmin(dim=1)
    return TiseanNeighbours(index, paired, stuck)
