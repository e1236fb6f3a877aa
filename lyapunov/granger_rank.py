"""The unrestricted Granger regression for candidates whose lag columns are (nearly) redundant,
with the degrees of freedom that statsmodels gives them.

statsmodels' OLS sets ``df_resid = nobs - rank`` for the joint design D = [y lags, x lags,
constant], where ``rank`` counts the singular values of D above ``k * eps * sigma_max(D)``
(``numpy.linalg.matrix_rank`` of the diagonal of singular values, k = 2 lag + 1 columns). An x
that is an exact linear or quadratic trend has lag columns that repeat each other and the
constant: they add one or two directions, not ``lag``. Deciding that needs each column's
remainder (after the restricted design and the earlier x columns) computed from the data, to
about eps times its norm; the normal equations only resolve it to about sqrt(eps). So the
batched Cholesky fast path in :mod:`lyapunov.granger` hands the few candidates it cannot decide
to this slower, exact path: Gram-Schmidt on the residualized columns themselves, repeated
once, with a column dropped where its remainder is at most statsmodels' threshold. Remainders
and singular values are not the same numbers, but the two counts agree wherever none lies near
the threshold: for exact trends the dropped remainders sit below 0.2 of it and the kept ones
above 1e10 times it; columns collinear to ~1e-15 are a coin toss for any two implementations.
"""

from typing import Any

import torch
from torch import Tensor


def exact_unrestricted_fit(lag_rows: Tensor, new_part: Tensor, fit: Any) -> tuple[Tensor, Tensor, Tensor]:
    """For candidates' lag columns ``lag_rows`` ``(s, lag, nobs)`` and their parts orthogonal to
    the restricted design ``new_part`` (same shape), given the restricted ``fit`` (its
    orthonormal ``basis``, ``residual``, ``design`` and ``gram``): the sum of squares x explains
    beyond the restricted fit, the unrestricted residual sum of squares, and how many of x's
    columns count in the rank, each ``(s,)``."""
    # Project the restricted design out once more, so that what is left of a column that adds
    # nothing is rounding of its own size, not of the first projection's.
    new_part = new_part - (new_part @ fit.basis) @ fit.basis.T
    basis, kept = _orthonormal_rows(new_part, _rank_tolerance(lag_rows, fit.design, fit.gram))
    # The residual itself, projected off x's new directions one at a time: near a perfect fit
    # ssr_restricted - explained would be rounding noise, and statsmodels' perfect-fit test
    # reads exactly this number.
    residual = fit.residual.expand(lag_rows.shape[0], -1)
    explained = torch.zeros(lag_rows.shape[0], dtype=lag_rows.dtype, device=lag_rows.device)
    for j in range(lag_rows.shape[1]):
        coefficient = (basis[:, j] * residual).sum(dim=1)
        residual = residual - coefficient[:, None] * basis[:, j]
        explained = explained + coefficient.square()
    return explained, residual.square().sum(dim=1), kept.sum(dim=1)


def _rank_tolerance(lag_rows: Tensor, design: Tensor, design_gram: Tensor, iterations: int = 12) -> Tensor:
    """``k * eps * sigma_max(D)`` per candidate, with sigma_max the root of the largest
    eigenvalue of D'D by power iteration on the small (k, k) matrices from the all-ones start.
    It converges fast where one direction dominates and is close anyway where none does; only a
    column within a small factor of the threshold could notice the difference."""
    s, lag, nobs = lag_rows.shape
    cross = (lag_rows.reshape(s * lag, nobs) @ design).view(s, lag, -1)  # X'A
    gram = torch.cat(
        [
            torch.cat([design_gram.expand(s, -1, -1), cross.transpose(1, 2)], dim=2),
            torch.cat([cross, lag_rows @ lag_rows.transpose(1, 2)], dim=2),
        ],
        dim=1,
    )  # D'D, (s, k, k)
    k = gram.shape[1]
    tiny = torch.finfo(gram.dtype).tiny
    vector = torch.ones(s, k, 1, dtype=gram.dtype, device=gram.device)
    for _ in range(iterations):
        vector = gram @ vector
        vector = vector / torch.linalg.vector_norm(vector, dim=1, keepdim=True).clamp(min=tiny)
    largest = (vector * (gram @ vector)).sum(dim=(1, 2))  # Rayleigh quotient
    return k * torch.finfo(gram.dtype).eps * largest.clamp(min=0.0).sqrt()


def _orthonormal_rows(rows: Tensor, tolerance: Tensor) -> tuple[Tensor, Tensor]:
    """Orthonormal basis of the rows of ``rows`` ``(s, k, n)``, row by row (Gram-Schmidt,
    repeated once to reach working precision). A row whose remainder has norm at most
    ``tolerance`` ``(s,)`` adds no new direction: its basis row is zero and ``kept`` ``(s, k)``
    is False there."""
    s, k, _ = rows.shape
    basis = torch.zeros_like(rows)
    kept = torch.zeros(s, k, dtype=torch.bool, device=rows.device)
    for j in range(k):
        v = rows[:, j]
        for _ in range(2):
            previous = basis[:, :j]
            v = v - ((previous * v[:, None, :]).sum(dim=2, keepdim=True) * previous).sum(dim=1)
        norm = torch.linalg.vector_norm(v, dim=1)
        keep = norm > tolerance
        basis[:, j] = torch.where(keep[:, None], v / norm.clamp(min=torch.finfo(rows.dtype).tiny)[:, None], 0.0)
        kept[:, j] = keep
    return basis, kept
