"""Rosenstein exponents against nolds 0.6.2 ``lyap_r`` and against systems with known exponents."""

import math
import warnings

import numpy as np
import pytest
import torch

from foundations.errors import UserError
from lyapunov.rosenstein import largest_lyapunov, min_series_length

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # nolds imports pkg_resources, which warns
    import nolds


def _nolds(series: np.ndarray, **params) -> tuple[float, np.ndarray, np.ndarray]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        exponent, (ks, curve, _) = nolds.lyap_r(series, fit="poly", debug_data=True, **params)
    return exponent, ks, curve


def _random_cases(count: int, seed: int):
    """Random series of lengths 50-200 with random embedding parameters; every third one is
    rounded to one decimal so that many distances tie (and some pairs sit at distance zero).
    Embedding dimensions reach 10, past the 8 terms where numpy's sum stops being sequential."""
    rng = np.random.default_rng(seed)
    for case in range(count):
        n = int(rng.integers(50, 201))
        params = dict(
            emb_dim=int(rng.integers(1, 5)) if case % 4 else int(rng.integers(5, 11)),
            lag=int(rng.integers(1, 4)),
            min_tsep=int(rng.integers(0, 6)),
            trajectory_len=int(rng.integers(2, 25)),
        )
        series = rng.standard_normal(n).cumsum() if case % 2 else rng.standard_normal(n)
        if case % 3 == 0:
            series = np.round(series, 1)
        yield series, params


@pytest.mark.parametrize("backend", ["loop", "tensor"])
def test_exponent_and_curve_equal_nolds_on_random_series(backend):
    for series, params in _random_cases(300, seed=0):
        expected, ks, expected_curve = _nolds(series, **params)
        ours = largest_lyapunov(torch.tensor(series), backend=backend, **params)
        assert not ours.degenerate
        assert abs(ours.exponent.item() - expected) <= 1e-9, params
        finite = torch.isfinite(ours.curve)
        np.testing.assert_array_equal(np.flatnonzero(finite.numpy()), ks)
        np.testing.assert_allclose(ours.curve[finite].numpy(), expected_curve, rtol=0, atol=1e-12)


@pytest.mark.parametrize("backend", ["loop", "tensor"])
def test_batch_equals_one_series_at_a_time_and_chunking_changes_nothing(backend):
    rng = np.random.default_rng(1)
    x = torch.tensor(rng.standard_normal((37, 60)))
    params = dict(emb_dim=3, lag=2, min_tsep=2, trajectory_len=8, backend=backend)
    whole = largest_lyapunov(x, **params)
    tiny_chunks = largest_lyapunov(x, max_chunk_elements=1, **params)
    torch.testing.assert_close(tiny_chunks.curve, whole.curve, rtol=0, atol=0)
    one_by_one = torch.stack([largest_lyapunov(row, **params).exponent for row in x])
    torch.testing.assert_close(one_by_one, whole.exponent, rtol=0, atol=0)
    nested = largest_lyapunov(x[:36].reshape(4, 9, 60), **params)
    assert nested.exponent.shape == (4, 9) and nested.curve.shape == (4, 9, 8)
    torch.testing.assert_close(nested.exponent.reshape(-1), whole.exponent[:36], rtol=0, atol=0)


def test_fit_offset_and_tau_follow_nolds():
    rng = np.random.default_rng(2)
    for _ in range(20):
        series = np.round(rng.standard_normal(80), 1)
        params = dict(emb_dim=2, lag=1, min_tsep=1, trajectory_len=10)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            expected = nolds.lyap_r(series, fit="poly", fit_offset=3, tau=0.5, **params)
        ours = largest_lyapunov(torch.tensor(series), fit_offset=3, tau=0.5, **params).exponent.item()
        assert abs(ours - expected) <= 1e-9


def test_diff_statistic_is_first_step_of_curve():
    x = torch.randn(50, 70, dtype=torch.float64)
    poly = largest_lyapunov(x, trajectory_len=6)
    diff = largest_lyapunov(x, trajectory_len=6, fit="diff")
    torch.testing.assert_close(diff.curve, poly.curve, rtol=0, atol=0)
    torch.testing.assert_close(diff.exponent, poly.curve[:, 1] - poly.curve[:, 0], rtol=0, atol=0)


def test_logistic_map_at_r4_has_exponent_ln2():
    generator = torch.Generator().manual_seed(0)
    state = 0.01 + 0.98 * torch.rand(500, generator=generator, dtype=torch.float64)
    for _ in range(10):  # leave the initial transient
        state = 4 * state * (1 - state)
    steps = []
    for _ in range(50):
        steps.append(state)
        state = 4 * state * (1 - state)
    result = largest_lyapunov(torch.stack(steps, dim=1), trajectory_len=2, fit="diff")
    assert not result.degenerate.any()
    assert abs(result.exponent.median().item() - math.log(2)) < 0.05


def test_sine_has_exponent_near_zero():
    generator = torch.Generator().manual_seed(1)
    phase = 20 * torch.rand(500, 1, generator=generator, dtype=torch.float64)
    t = torch.arange(50, dtype=torch.float64)
    windows = torch.sin(2 * math.pi * (t + phase) / 20)
    result = largest_lyapunov(windows, trajectory_len=2, fit="diff")
    assert result.exponent.median().item() < 0.15


def test_rounding_to_decimals_matches_nolds_on_rounded_data():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((30, 60)) * 1e-3
    ours = largest_lyapunov(torch.tensor(x), decimals=6, trajectory_len=10)
    rounded_first = largest_lyapunov(torch.tensor(np.round(x, 6)), trajectory_len=10)
    torch.testing.assert_close(ours.exponent, rounded_first.exponent, rtol=0, atol=0)
    for row, value in zip(np.round(x, 6), ours.exponent):
        expected, _, _ = _nolds(row, emb_dim=2, lag=1, min_tsep=0, trajectory_len=10)
        assert abs(value.item() - expected) <= 1e-9


def test_degenerate_windows_are_flagged_with_a_defined_value():
    x = torch.randn(5, 60, dtype=torch.float64)
    x[0] = 3.0  # constant
    x[1] = 1.0 + 1e-9 * torch.arange(60, dtype=torch.float64)  # range below tol
    x[2, 7] = float("nan")
    result = largest_lyapunov(x, tol=1e-6, degenerate_value=-1.0)
    assert result.degenerate.tolist() == [True, True, True, False, False]
    assert result.exponent[:3].tolist() == [-1.0, -1.0, -1.0]
    assert torch.isfinite(result.exponent).all()
    assert torch.isneginf(result.curve[0]).all()  # every pair at distance zero, as nolds
    # Without a tolerance the slow ramp is an ordinary series.
    assert not largest_lyapunov(x[1], tol=0.0).degenerate


def test_diff_with_all_pairs_at_zero_distance_on_step_zero_is_degenerate():
    # A period-2 pattern: each point's nearest neighbour is an identical copy of it.
    x = torch.tensor([0.0, 1.0] * 30, dtype=torch.float64)
    result = largest_lyapunov(x, fit="diff", trajectory_len=2)
    assert result.degenerate and result.exponent.item() == 0.0


def test_float32_input_gives_the_float64_result_and_keeps_its_dtype():
    # The distances are computed in float64 whatever the input: the same numbers given as
    # float32 give the float64 exponents, rounded once to float32 at the end.
    generator = torch.Generator().manual_seed(7)
    walks = torch.randn(1000, 50, generator=generator, dtype=torch.float64).cumsum(dim=1)
    for neighbours in ("nolds", "tisean"):
        single = (walks + 20.0).float()  # an offset makes float32's own rounding coarse
        options = dict(trajectory_len=10, neighbours=neighbours)
        result = largest_lyapunov(single, **options)
        assert result.exponent.dtype == torch.float32 and result.curve.dtype == torch.float32
        reference = largest_lyapunov(single.double(), **options)
        torch.testing.assert_close(result.exponent.double(), reference.exponent, rtol=1e-6, atol=1e-6)
        # 6-decimal data (the paper's): float32 cannot hold them, but rounding after the cast to
        # float64 recovers them exactly (float32's error is far below half a unit of 1e-6).
        # Rounded and compared in float32, 3% of these windows used to move by more than 1e-3.
        rounded = torch.round(0.3 + 1e-4 * walks, decimals=6)  # like recorded weights
        paper = dict(emb_dim=2, lag=1, min_tsep=0, trajectory_len=4, fit="diff", decimals=6, neighbours=neighbours)
        from_single = largest_lyapunov(rounded.float(), **paper)
        from_double = largest_lyapunov(rounded, **paper)
        assert (from_single.degenerate == from_double.degenerate).all()
        torch.testing.assert_close(from_single.exponent.double(), from_double.exponent, rtol=1e-6, atol=1e-6)


def test_bad_arguments_raise_user_errors():
    with pytest.raises(UserError, match="need at least 22 points"):
        largest_lyapunov(torch.randn(21), emb_dim=2, lag=1, min_tsep=0, trajectory_len=20)
    for params in (
        dict(emb_dim=2, lag=1, min_tsep=0, trajectory_len=20),
        dict(emb_dim=4, lag=3, min_tsep=5, trajectory_len=7),
    ):
        assert min_series_length(**params) == nolds.lyap_r_len(**params)
    shortest = torch.randn(22, dtype=torch.float64)
    expected, _, _ = _nolds(shortest.numpy(), emb_dim=2, lag=1, min_tsep=0, trajectory_len=20)
    assert abs(largest_lyapunov(shortest, trajectory_len=20).exponent.item() - expected) <= 1e-9
    with pytest.raises(UserError, match="unknown fit"):
        largest_lyapunov(torch.randn(50), fit="ransac")
    with pytest.raises(UserError, match="floating-point"):
        largest_lyapunov(torch.arange(50))
    with pytest.raises(UserError, match="trajectory_len >= 2"):
        largest_lyapunov(torch.randn(50), fit="diff", trajectory_len=1)
    with pytest.raises(UserError, match="unknown backend"):
        largest_lyapunov(torch.randn(50), backend="numba")
    with pytest.raises(UserError, match="use backend='tensor'"):
        largest_lyapunov(torch.randn(300), emb_dim=129, trajectory_len=2, backend="loop")
