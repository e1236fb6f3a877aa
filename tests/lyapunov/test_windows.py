"""Windowed exponents against a slow loop over weights and windows."""

import warnings

import numpy as np
import pytest
import torch

from foundations.errors import UserError
from lyapunov.rosenstein import largest_lyapunov
from lyapunov.windows import window_starts, window_stride, windowed_exponents

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # nolds imports pkg_resources, which warns
    import nolds

PARAMS = dict(emb_dim=2, lag=1, min_tsep=0, trajectory_len=5)


def test_window_starts_by_hand():
    assert window_stride(50, 0.1) == 45
    assert window_starts(140, 50, 0.1).tolist() == [0, 45, 90]  # 90 + 50 = 140 fits exactly
    assert window_starts(139, 50, 0.1).tolist() == [0, 45]  # the tail that cannot fill one is dropped
    assert window_starts(10, 10, 0.0).tolist() == [0]
    assert window_stride(20, 0.5) == 10
    assert window_stride(7, 0.1) == 6  # round(0.7) = 1 step shared


def test_matches_nolds_in_a_loop_over_weights_and_windows():
    rng = np.random.default_rng(0)
    trajectory = rng.standard_normal((130, 4)).cumsum(axis=0)
    window, overlap = 40, 0.25
    result = windowed_exponents(torch.tensor(trajectory), window, overlap, fit="poly", **PARAMS)
    starts = window_starts(130, window, overlap).tolist()
    assert starts == [0, 30, 60, 90]  # stride 40 - 10; the last window ends at step 130
    assert result.exponents.shape == (4, 4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = [
            [nolds.lyap_r(trajectory[s : s + window, p], fit="poly", **PARAMS) for p in range(4)]
            for s in starts
        ]
    np.testing.assert_allclose(result.exponents.numpy(), expected, rtol=0, atol=1e-9)
    assert not result.degenerate.any()


def test_matches_one_series_at_a_time_with_the_paper_statistic_and_any_chunking():
    trajectory = torch.randn(100, 7, dtype=torch.float64).cumsum(dim=0)
    trajectory[:, 3] = 0.5  # a weight that never moves
    options = dict(fit="diff", decimals=6, **PARAMS)
    result = windowed_exponents(trajectory, 30, 0.1, **options)
    starts = window_starts(100, 30, 0.1).tolist()
    for w, s in enumerate(starts):
        for p in range(7):
            single = largest_lyapunov(trajectory[s : s + 30, p], **options)
            assert result.exponents[w, p].item() == single.exponent.item()
            assert result.degenerate[w, p].item() == single.degenerate.item()
    assert result.degenerate[:, 3].all() and not result.degenerate[:, :3].any()
    one_column_at_a_time = windowed_exponents(trajectory, 30, 0.1, max_window_elements=1, **options)
    torch.testing.assert_close(one_column_at_a_time.exponents, result.exponents, rtol=0, atol=0)


def test_result_goes_to_the_requested_device_and_keeps_the_dtype():
    trajectory = torch.randn(60, 3)
    result = windowed_exponents(trajectory, 30, 0.0, device="cpu", **PARAMS)
    assert result.exponents.dtype == torch.float32 and result.exponents.device.type == "cpu"
    assert result.exponents.shape == (2, 3)


def test_bad_windows_raise_user_errors():
    with pytest.raises(UserError, match="shorter than one window"):
        windowed_exponents(torch.randn(20, 2), 30, 0.1)
    with pytest.raises(UserError, match="overlap"):
        window_stride(30, 1.0)
    with pytest.raises(UserError, match="window must be"):
        window_stride(0, 0.1)
    with pytest.raises(UserError, match=r"\(steps, weights\)"):
        windowed_exponents(torch.randn(50), 30, 0.1)
