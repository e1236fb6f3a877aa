"""Ties of correctly rounded square roots, decided exactly on float64 tensors.

numpy's ``sqrt`` is IEEE correctly rounded; torch's is not on every device: CPU builds that use
MKL's vector math (torch 2.14.1, for one) return a root within one ulp, wrong for about 0.7%
of float64 inputs. Two distinct squared distances whose correctly rounded roots are equal are a
tie for nolds (which takes ``argmin`` over ``sqrt`` of the squared distances), so torch's own
``sqrt`` would break some of those ties differently.

Exact test: for a positive float r, ``fl(sqrt(a)) == r`` exactly when
``prev(r) * r < a <= r * next(r)`` with the products taken exactly (the midpoints' squares
differ from them by a quarter ulp squared, and no float64 lies strictly in between). Products
are exact as Dekker's two-product, so no fused multiply-add is needed. Assumes torch's ``sqrt``
is faithful (within one ulp: the tests check it) and inputs whose squares neither overflow nor
underflow (about 1e-290 < a < 1e300, or 0).
"""

import torch
from torch import Tensor

_SPLIT = 134217729.0  # 2**27 + 1: Veltkamp's splitting constant for float64


def _split(a: Tensor) -> tuple[Tensor, Tensor]:
    """Veltkamp's split: a = high + low exactly, each half of a's significand."""
    c = a * _SPLIT
    high = c - (c - a)
    return high, a - high


def _root_and_bounds(a: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """For each a: the index k of the correctly rounded root among the candidates
    (prev(r), r, next(r)) around torch's root r, those candidates, and for each candidate c
    the exact product ``c * next(c)`` as ``fl(c * next(c))`` and its error, stacked ``(3, ...)``."""
    inf = torch.full_like(a, float("inf"))
    root = torch.sqrt(a)
    above = torch.nextafter(root, inf)
    ladder = torch.stack([torch.nextafter(root, -inf), root, above, torch.nextafter(above, inf)])
    high, low = _split(ladder)
    lower, upper = ladder[:3], ladder[1:]
    products = lower * upper
    # Dekker's two-product: the exact error of each product, without fused multiply-adds.
    errors = ((high[:3] * high[1:] - products) + high[:3] * low[1:] + low[:3] * high[1:]) + low[:3] * low[1:]
    # sign(a - c * next(c)) exactly: a - fl(c * next(c)) is exact by Sterbenz's lemma.
    excess = (a - products[:2]) - errors[:2]
    # r is too large if a <= prev(r) * r, too small if a > r * next(r).
    k = torch.where(excess[0] <= 0, 0, torch.where(excess[1] > 0, 2, 1))
    k = torch.where(a > 0, k, 1)  # sqrt(0) = 0 exactly
    return k, lower, products, errors


def sqrt_rn(a: Tensor) -> Tensor:
    """Correctly rounded square root of a float64 tensor of non-negative values."""
    k, candidates, _, _ = _root_and_bounds(a)
    return candidates.gather(0, k[None]).squeeze(0)


def tie_limit(a: Tensor) -> Tensor:
    """The largest float64 whose correctly rounded square root equals that of ``a``: the exact
    product ``R * next(R)`` rounded down, where R is the correctly rounded root of a."""
    k, _, products, errors = _root_and_bounds(a)
    product = products.gather(0, k[None]).squeeze(0)
    rounded_up = errors.gather(0, k[None]).squeeze(0) < 0
    return torch.where(rounded_up, torch.nextafter(product, torch.zeros_like(product)), product)
