"""Batched Granger tests against statsmodels' grangercausalitytests, one candidate at a time."""

import warnings

import numpy as np
import pytest
import torch
from statsmodels.stats.multitest import multipletests
from statsmodels.tools.sm_exceptions import InfeasibleTestError
from statsmodels.tsa.stattools import grangercausalitytests

from foundations.errors import UserError
from lyapunov.granger import TESTS, benjamini_hochberg, granger_min_p, granger_tests, largest_lag


def _statsmodels(y: np.ndarray, x: np.ndarray, maxlag: int) -> dict:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # rank-deficient designs warn
        return grangercausalitytests(np.column_stack([y, x]), maxlag)


def _assert_equal_to_statsmodels(x: np.ndarray, y: np.ndarray, maxlag: int) -> None:
    result = granger_tests(torch.tensor(x), torch.tensor(y), maxlag)
    for b, candidate in enumerate(x):
        reference = _statsmodels(y, candidate, maxlag)
        for lag in range(1, maxlag + 1):
            for test in TESTS:
                statistic, pvalue = reference[lag][0][test][:2]
                ours = getattr(result, test)
                ours_p = ours.pvalue[b, lag - 1].item()
                assert abs(ours_p - pvalue) <= 1e-8, (b, lag, test)
                if pvalue > 1e-12:
                    assert abs(ours_p - pvalue) <= 1e-8 * pvalue, (b, lag, test)
                assert ours.statistic[b, lag - 1].item() == pytest.approx(statistic, rel=1e-8, abs=1e-10)
            assert result.df_resid[b, lag - 1].item() == reference[lag][0]["ssr_ftest"][2]
    assert not result.infeasible.any()


def test_equal_to_statsmodels_on_noise_and_random_walks():
    rng = np.random.default_rng(0)
    n, maxlag = 60, 14
    y = rng.standard_normal(n)
    x = np.concatenate([rng.standard_normal((6, n)), rng.standard_normal((6, n)).cumsum(axis=1)])
    _assert_equal_to_statsmodels(x, y, maxlag)
    _assert_equal_to_statsmodels(x, y.cumsum(), maxlag)


def test_equal_to_statsmodels_on_causal_series_and_detects_them():
    rng = np.random.default_rng(1)
    n, maxlag = 80, 6
    x = rng.standard_normal((8, n))
    y = np.zeros(n)
    y[3:] = 0.8 * x[0, :-3]  # x_0 drives y three steps later
    y += 0.3 * rng.standard_normal(n)
    x[1] = np.roll(y, -1) + 0.1 * rng.standard_normal(n)  # a noisy lagged copy of y, one step ahead
    _assert_equal_to_statsmodels(x, y, maxlag)
    min_p = granger_min_p(torch.tensor(x), torch.tensor(y), maxlag)
    assert min_p[0] < 1e-10 and min_p[1] < 1e-10


def test_x_equal_to_y_adds_nothing_as_statsmodels_pseudo_inverse():
    rng = np.random.default_rng(2)
    y = rng.standard_normal(50)
    _assert_equal_to_statsmodels(y[None, :], y, 8)
    result = granger_tests(torch.tensor(y[None, :]), torch.tensor(y), 8)
    assert (result.ssr_ftest.pvalue == 1.0).all()
    assert (result.df_resid[0] == 50 - 2 * torch.arange(1, 9) - 1).all()  # only y's lags count


def test_exact_trends_count_only_the_directions_they_add_as_statsmodels_rank():
    # The lags of a linear trend span {1, t}: with the constant they add one direction to the
    # design, not L; a quadratic adds two. statsmodels' df_resid is nobs minus that rank.
    rng = np.random.default_rng(7)
    n, maxlag = 60, 14
    t = np.arange(n, dtype=np.float64)
    trends = np.stack([2 + 0.5 * t, -3 + 0.01 * t, t, 1 + 0.3 * t - 0.02 * t**2, 0.001 * t**2, (t - 30) ** 2])
    for y in (rng.standard_normal(n), rng.standard_normal(n).cumsum()):
        _assert_equal_to_statsmodels(trends, y, maxlag)
        result = granger_tests(torch.tensor(trends), torch.tensor(y), maxlag)
        lags = torch.arange(1, maxlag + 1)
        full_rank = n - 3 * lags - 1
        adds = torch.tensor([1, 1, 1, 2, 2, 2])[:, None]
        # By hand: L y lags + constant, plus min(L, what the trend adds) of x's lags.
        expected = (n - lags) - (lags + 1) - torch.minimum(lags, adds)
        assert (result.df_resid == expected).all()
        assert (result.df_resid[:, 2:] > full_rank[2:]).all()


def test_white_noise_rejects_at_the_nominal_rate():
    generator = torch.Generator().manual_seed(3)
    x = torch.randn(2000, 60, generator=generator, dtype=torch.float64)
    y = torch.randn(60, generator=generator, dtype=torch.float64)
    result = granger_tests(x, y, 4)
    # Under the null the F test is exact: each lag's p-values are uniform over the candidates.
    rates = (result.ssr_ftest.pvalue < 0.05).double().mean(dim=0)
    assert ((rates > 0.03) & (rates < 0.07)).all(), rates


def test_infeasible_candidates_get_defined_values():
    rng = np.random.default_rng(4)
    n = 40
    y = rng.standard_normal(n)
    x = rng.standard_normal((3, n))
    x[0] = 2.0  # constant: statsmodels refuses
    x[1, :-1] = y[1:]  # y_t = x_{t-1} exactly: a perfect fit that needs x
    result = granger_tests(torch.tensor(x), torch.tensor(y), 3)
    for b in (0, 1):
        with pytest.raises(InfeasibleTestError):
            _statsmodels(y, x[b], 3)
    assert result.infeasible[:2].all() and not result.infeasible[2].any()
    assert (result.ssr_chi2test.statistic[0] == 0).all() and (result.ssr_chi2test.pvalue[0] == 1).all()
    assert torch.isinf(result.ssr_ftest.statistic[1]).all() and (result.ssr_ftest.pvalue[1] == 0).all()
    for test in TESTS:
        assert not getattr(result, test).pvalue.isnan().any()


def test_constant_effect_series_is_no_evidence_for_anyone():
    x = torch.randn(4, 30, dtype=torch.float64)
    result = granger_tests(x, torch.full((30,), 0.25, dtype=torch.float64), 2)
    assert result.infeasible.all()
    assert (result.ssr_chi2test.pvalue == 1).all() and (result.lrtest.pvalue == 1).all()


def test_min_p_and_benjamini_hochberg_match_statsmodels():
    rng = np.random.default_rng(5)
    y = rng.standard_normal(45)
    x = rng.standard_normal((20, 45))
    x[:5, 2:] += y[:-2]
    min_p = granger_min_p(torch.tensor(x), torch.tensor(y), 5, test="ssr_ftest")
    expected = [min(r[lag][0]["ssr_ftest"][1] for lag in r) for r in (_statsmodels(y, c, 5) for c in x)]
    np.testing.assert_allclose(min_p.numpy(), expected, rtol=1e-8, atol=1e-12)
    pvalues = np.concatenate([min_p.numpy(), [0.5, 0.5, 1.0, 0.0]])  # ties and both ends
    adjusted = benjamini_hochberg(torch.tensor(pvalues))
    np.testing.assert_allclose(adjusted.numpy(), multipletests(pvalues, method="fdr_bh")[1], rtol=1e-12)


def test_chunking_and_float32():
    generator = torch.Generator().manual_seed(6)
    x = torch.randn(23, 50, generator=generator, dtype=torch.float64)
    y = torch.randn(50, generator=generator, dtype=torch.float64)
    whole = granger_tests(x, y, 5)
    chunked = granger_tests(x, y, 5, max_chunk_elements=1)
    torch.testing.assert_close(chunked.ssr_chi2test.pvalue, whole.ssr_chi2test.pvalue, rtol=1e-12, atol=0)
    single = granger_tests(x.float(), y.float(), 5)
    assert single.ssr_chi2test.pvalue.dtype == torch.float32
    single_p = single.ssr_chi2test.pvalue.double()
    torch.testing.assert_close(single_p, whole.ssr_chi2test.pvalue, rtol=0, atol=1e-4)


def test_bad_inputs_raise_user_errors_that_say_what_is_allowed():
    assert largest_lag(60) == 19
    y = torch.randn(60, dtype=torch.float64)
    x = torch.randn(2, 60, dtype=torch.float64)
    with pytest.raises(UserError, match="the largest allowed is 19"):
        granger_tests(x, y, 20)
    granger_tests(x, y, 19)  # the largest allowed works, as in statsmodels
    _statsmodels(y.numpy(), x[0].numpy(), 19)
    with pytest.raises(ValueError):
        _statsmodels(y.numpy(), x[0].numpy(), 20)
    with pytest.raises(UserError, match="finite"):
        granger_tests(x, y.clone().fill_(float("nan")), 3)
    with pytest.raises(UserError, match="shape"):
        granger_tests(x, y[:50], 3)
    with pytest.raises(UserError, match="unknown Granger test"):
        granger_min_p(x, y, 3, test="params_ftest")
