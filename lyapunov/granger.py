"""Granger causality of many candidate cause series on one effect series, all at once.

For each lag L = 1..maxlag and each candidate x_b, as statsmodels' ``grangercausalitytests``:
regress y_t on a constant and y_{t-1..t-L} (restricted), and additionally on x_{t-1..t-L}
(unrestricted), over t = L..n-1 (each lag trims its own first L points), and compare the residual
sums of squares: ``ssr_ftest`` (F with L and ``df_resid`` degrees of freedom, n - 3L - 1 at full
rank), ``ssr_chi2test`` and ``lrtest`` (chi-square with L). The null hypothesis is that x does not
Granger-cause y.

The restricted regression is one per lag, shared by the whole batch. By Frisch-Waugh-Lovell,
the unrestricted fit explains, beyond it, the projection of the restricted residuals onto the
part of x's lags orthogonal to the restricted design: two matrix products for the whole batch
give each candidate's small Gram system, which is solved by a Cholesky factorization run for all
candidates at once. The residual degrees of freedom are statsmodels': nobs minus the rank of
the joint design, so a lag column that adds nothing new (x equal to y, x an exact linear or
quadratic trend) is dropped and not counted. The normal equations cannot tell such a column
from a nearly redundant one, so candidates with a pivot near rounding level are refitted by
:mod:`lyapunov.granger_rank`, which decides the rank as statsmodels does.

Where statsmodels refuses a candidate (``InfeasibleTestError``: a constant lag column, or a
perfect fit) the result is flagged ``infeasible`` and still defined: a perfect fit of y from its
own past gives statistic 0 and p-value 1 (x cannot add anything); a perfect fit that needs x
gives statistic inf and p-value 0; otherwise the values are computed as usual.
"""

from typing import NamedTuple

import torch
from torch import Tensor

from foundations.errors import UserError
from lyapunov.distributions import chi2_sf, f_sf
from lyapunov.granger_rank import exact_unrestricted_fit

TESTS = ("ssr_ftest", "ssr_chi2test", "lrtest")


class GrangerStatistic(NamedTuple):
    statistic: Tensor  # (B, maxlag); column L-1 is lag L
    pvalue: Tensor  # (B, maxlag)


class GrangerResult(NamedTuple):
    ssr_ftest: GrangerStatistic
    ssr_chi2test: GrangerStatistic
    lrtest: GrangerStatistic
    df_resid: Tensor  # (B, maxlag) residual degrees of freedom of the unrestricted regression
    infeasible: Tensor  # (B, maxlag) bool: statsmodels would raise InfeasibleTestError here


def largest_lag(n: int) -> int:
    """The largest maxlag statsmodels accepts for series of length n (it needs n > 3 maxlag + 1)."""
    return (n - 2) // 3


def granger_tests(x: Tensor, y: Tensor, maxlag: int, *, max_chunk_elements: int = 1 << 22) -> GrangerResult:
    """Does each row of ``x`` ``(B, n)`` Granger-cause ``y`` ``(n,)``? All tests, lags 1..maxlag.

    Candidates are processed ``max_chunk_elements // (n * maxlag)`` at a time. Inputs must be
    finite; float64 reproduces statsmodels to rounding, float32 is faster and coarser.
    """
    _check_inputs(x, y, maxlag)
    b, n = x.shape
    fits = [_RestrictedFit(y, lag) for lag in range(1, maxlag + 1)]
    lags = torch.arange(1, maxlag + 1, device=x.device)
    out = [torch.empty(b, maxlag, dtype=x.dtype, device=x.device) for _ in range(6)]
    df_resid = torch.empty(b, maxlag, dtype=torch.long, device=x.device)
    infeasible = torch.empty(b, maxlag, dtype=torch.bool, device=x.device)
    rows = max(1, max_chunk_elements // (n * maxlag))
    for start in range(0, b, rows):
        part = slice(start, start + rows)
        chunk = x[part]
        # Changes between consecutive values, counted cumulatively: a lag column is constant
        # (statsmodels refuses the test) when no change falls inside its window.
        changes = torch.nn.functional.pad((chunk[:, 1:] != chunk[:, :-1]).cumsum(dim=1), (1, 0))
        explained = torch.empty(chunk.shape[0], maxlag, dtype=x.dtype, device=x.device)
        ssr = torch.empty_like(explained)
        perfect = torch.empty_like(explained, dtype=torch.bool)
        for fit in fits:
            column = fit.lag - 1
            fitted = _fit_one_lag(chunk, fit)
            explained[:, column], ssr[:, column], df_resid[part, column], perfect[:, column] = fitted
            # Lag column j (j = 0..lag-1) spans x[j : j + nobs]: changes[j + nobs - 1] - changes[j].
            inside = changes[:, fit.nobs - 1 : fit.nobs - 1 + fit.lag] - changes[:, : fit.lag]
            infeasible[part, column] = perfect[:, column] | (inside == 0).any(dim=1) | fit.constant_lag
        nobs = n - lags
        y_self_perfect = torch.stack([fit.perfect for fit in fits])
        ratio = explained / ssr
        stats = [ratio * df_resid[part] / lags, nobs * ratio, nobs * torch.log1p(ratio)]
        # Defined values where the ratio is not: no evidence where y fits itself, certainty
        # where x completes a perfect fit.
        fill = torch.where(y_self_perfect, 0.0, float("inf")).to(x.dtype)
        f_stat, chi2_stat, lr_stat = (torch.where(perfect, fill, s) for s in stats)
        values = (
            f_stat, f_sf(f_stat, lags, df_resid[part], max_df=float(n)),
            chi2_stat, chi2_sf(chi2_stat, lags),
            lr_stat, chi2_sf(lr_stat, lags),
        )
        for target, value in zip(out, values):
            target[part] = value
    f_stat, f_p, chi2_stat, chi2_p, lr_stat, lr_p = out
    return GrangerResult(
        GrangerStatistic(f_stat, f_p),
        GrangerStatistic(chi2_stat, chi2_p),
        GrangerStatistic(lr_stat, lr_p),
        df_resid,
        infeasible,
    )


def granger_min_p(x: Tensor, y: Tensor, maxlag: int, test: str = "ssr_chi2test") -> Tensor:
    """Smallest p-value over lags 1..maxlag of ``test`` for each row of ``x``: shape ``(B,)``."""
    if test not in TESTS:
        raise UserError(f"unknown Granger test {test!r}: choose one of {', '.join(TESTS)}")
    return getattr(granger_tests(x, y, maxlag), test).pvalue.amin(dim=1)


def benjamini_hochberg(pvalues: Tensor) -> Tensor:
    """Benjamini-Hochberg adjusted p-values (false discovery rate) across a 1-D batch, as
    statsmodels' ``multipletests(method="fdr_bh")``: reject where adjusted <= alpha."""
    if pvalues.dim() != 1:
        raise UserError(f"benjamini_hochberg takes a 1-D batch of p-values, got shape {tuple(pvalues.shape)}")
    m = pvalues.numel()
    ordered, order = pvalues.sort()
    rank = torch.arange(1, m + 1, device=pvalues.device, dtype=pvalues.dtype)
    scaled = ordered * m / rank
    # Each adjusted value is the smallest scaled value at its rank or above.
    adjusted_sorted = scaled.flip(0).cummin(dim=0).values.flip(0).clamp(max=1.0)
    return torch.empty_like(adjusted_sorted).scatter_(0, order, adjusted_sorted)


class _RestrictedFit:
    """The regression of y_t on a constant and y_{t-1..t-L}: shared by every candidate."""

    def __init__(self, y: Tensor, lag: int):
        n = y.shape[0]
        self.lag, self.nobs = lag, n - lag
        target = y[lag:]
        lags = y.unfold(0, lag, 1)[: self.nobs]  # row t-lag holds y_{t-lag..t-1}
        design = torch.cat([lags, torch.ones_like(target)[:, None]], dim=1)
        self.design, self.gram, self.design_norm2 = design, design.T @ design, design.square().sum()
        basis, kept = _orthonormal_columns(design[None], design[None])
        self.basis, self.rank = basis[0], kept.sum()
        self.residual = target - self.basis @ (self.basis.T @ target)
        self.ssr = self.residual.square().sum()
        self.tss = (target - target.mean()).square().sum()
        # y's own past fits it perfectly (statsmodels' threshold); includes a constant target.
        self.perfect = (self.tss == 0) | (self.ssr < torch.finfo(y.dtype).eps * self.tss)
        self.constant_lag = (lags.amax(dim=0) == lags.amin(dim=0)).any()


def _fit_one_lag(x: Tensor, fit: _RestrictedFit) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """For candidates ``x`` ``(b, n)`` at one lag: the sum of squares that x's lags explain
    beyond the restricted fit, the unrestricted residual sum of squares, its residual degrees of
    freedom, and whether the unrestricted fit is perfect (to statsmodels' threshold)."""
    lag, nobs = fit.lag, fit.nobs
    b = x.shape[0]
    eps = torch.finfo(x.dtype).eps
    # Row j of each candidate's block is x_{t-lag+j} over t = lag..n-1 (one lag column).
    lag_rows = x.unfold(1, nobs, 1)[:, :lag].reshape(b * lag, nobs)
    # Frisch-Waugh-Lovell: only the part of x's lags that the restricted design misses matters.
    new_part = (lag_rows - (lag_rows @ fit.basis) @ fit.basis.T).reshape(b, lag, nobs)
    lag_rows = lag_rows.reshape(b, lag, nobs)
    gram = new_part @ new_part.transpose(1, 2)  # (b, lag, lag)
    cross = new_part @ fit.residual  # (b, lag)
    # A pivot this far above the Gram matrix's rounding (~eps * squared column norm) and above
    # statsmodels' rank threshold (at most k * eps * the Frobenius norm of the joint design)
    # is a column that any rank rule keeps; a candidate with a pivot below goes to the exact path.
    scale2 = torch.linalg.vector_norm(lag_rows, dim=2).square()
    frobenius2 = fit.design_norm2 + scale2.sum(dim=1, keepdim=True)
    clear = 1e3 * (eps * scale2 + ((2 * lag + 1) * eps) ** 2 * frobenius2)
    coefficients, explained, kept = _least_squares_from_gram(gram, cross, clear)
    # The residual itself, not ssr_restricted - explained: near a perfect fit the difference
    # would be rounding noise, and statsmodels' perfect-fit test looks at exactly this number.
    residual = fit.residual - (coefficients[:, :, None] * new_part).sum(dim=1)
    ssr = residual.square().sum(dim=1)
    rank_x = kept.sum(dim=1)
    unclear = (~kept).any(dim=1).nonzero().squeeze(1)  # rare: one host sync per lag and chunk
    if unclear.numel():
        exact = exact_unrestricted_fit(lag_rows[unclear], new_part[unclear], fit)
        explained[unclear], ssr[unclear], rank_x[unclear] = exact
    # statsmodels: df_resid = nobs - rank of the joint design (y's lags, x's lags, constant).
    df_resid = nobs - fit.rank - rank_x
    perfect = (ssr < eps * fit.tss) | fit.perfect
    return explained, ssr, df_resid, perfect


def _least_squares_from_gram(gram: Tensor, cross: Tensor, threshold: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Least squares from the normal equations G beta = h, for Gram matrices G ``(b, k, k)`` and
    vectors h ``(b, k)``, by a Cholesky factorization G = F F' run column by column for the
    whole batch at once. A column whose pivot is at most ``threshold`` ``(b, k)`` is dropped
    (coefficient 0). Returns beta ``(b, k)``, the explained sum of squares
    h' G^+ h = |F^-1 h|^2 ``(b,)``, and which columns were kept ``(b, k)``."""
    b, k = cross.shape
    factor = torch.zeros_like(gram)  # lower triangular; zero row and column where dropped
    solved = torch.zeros_like(cross)  # F^-1 h
    kept = torch.zeros(b, k, dtype=torch.bool, device=gram.device)
    for j in range(k):
        row = factor[:, j, :j]
        pivot = gram[:, j, j] - row.square().sum(dim=1)
        keep = pivot > threshold[:, j]
        root = torch.where(keep, pivot, 1.0).sqrt()
        below = (gram[:, j + 1 :, j] - (factor[:, j + 1 :, :j] * row[:, None, :]).sum(dim=2)) / root[:, None]
        factor[:, j, j] = torch.where(keep, root, 0.0)
        factor[:, j + 1 :, j] = torch.where(keep[:, None], below, 0.0)
        value = (cross[:, j] - (row * solved[:, :j]).sum(dim=1)) / root
        solved[:, j] = torch.where(keep, value, 0.0)
        kept[:, j] = keep
    coefficients = torch.zeros_like(cross)  # F' beta = F^-1 h, backwards
    for j in reversed(range(k)):
        value = (solved[:, j] - (factor[:, j + 1 :, j] * coefficients[:, j + 1 :]).sum(dim=1)) / torch.where(
            kept[:, j], factor[:, j, j], 1.0
        )
        coefficients[:, j] = torch.where(kept[:, j], value, 0.0)
    return coefficients, solved.square().sum(dim=1), kept


def _orthonormal_columns(a: Tensor, reference: Tensor) -> tuple[Tensor, Tensor]:
    """Orthonormal basis of the columns of ``a`` ``(b, n, k)``, column by column (classical
    Gram-Schmidt, repeated once to reach working precision). A column whose remainder is at
    rounding level relative to the same column of ``reference`` adds nothing new: its basis
    column is zero and ``kept`` ``(b, k)`` is False there."""
    n, k = a.shape[1], a.shape[2]
    tolerance = max(n, k) * torch.finfo(a.dtype).eps
    scale = reference.norm(dim=1)  # (b, k)
    basis = torch.zeros_like(a)
    kept = torch.zeros(a.shape[0], k, dtype=torch.bool, device=a.device)
    for j in range(k):
        v = a[:, :, j : j + 1]
        for _ in range(2):
            previous = basis[:, :, :j]
            v = v - previous @ (previous.transpose(1, 2) @ v)
        norm = v.norm(dim=1)  # (b, 1)
        keep = norm[:, 0] > tolerance * scale[:, j]
        unit = v / norm.clamp(min=torch.finfo(a.dtype).tiny)[:, None]
        basis[:, :, j : j + 1] = torch.where(keep[:, None, None], unit, 0.0)
        kept[:, j] = keep
    return basis, kept


def _check_inputs(x: Tensor, y: Tensor, maxlag: int) -> None:
    if x.dim() != 2 or y.dim() != 1 or x.shape[1] != y.shape[0]:
        raise UserError(
            f"need x of shape (B, n) and y of shape (n,), got {tuple(x.shape)} and {tuple(y.shape)}"
        )
    if not torch.is_floating_point(x) or x.dtype != y.dtype:
        raise UserError(f"x and y must share one floating-point dtype, got {x.dtype} and {y.dtype}")
    if x.device != y.device:
        raise UserError(f"x and y must be on one device, got {x.device} and {y.device}")
    n = y.shape[0]
    if maxlag < 1:
        raise UserError(f"maxlag must be a positive integer, got {maxlag}")
    if n <= 3 * maxlag + 1:
        hint = f"the largest allowed is {largest_lag(n)}" if largest_lag(n) >= 1 else "no lag is possible"
        raise UserError(
            f"maxlag={maxlag} is too large for series of length {n} (need n > 3 * maxlag + 1): {hint}"
        )
    if not bool(torch.isfinite(y).all()) or not bool(torch.isfinite(x).all()):
        raise UserError("x and y must be finite: remove or fill NaN/inf values before testing")
