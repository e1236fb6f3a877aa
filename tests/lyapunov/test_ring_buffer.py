"""The call a training branch makes: a ring buffer of the last W snapshots of P weights, a
(P, W) float64 tensor, and one largest_lyapunov call at each window end with the paper's
settings (emb_dim 2, lag 1, min_tsep 0, trajectory_len 4, fit "diff", decimals 6) and its
rule that a weight whose window moves less than 1e-5 has exponent 0."""

import warnings

import numpy as np
import pytest
import torch

from lyapunov.rosenstein import largest_lyapunov

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # nolds imports pkg_resources, which warns
    import nolds

PAPER = dict(emb_dim=2, lag=1, min_tsep=0, trajectory_len=4, fit="diff", decimals=6)
BELOW_1E_5 = 9e-6  # ranges are compared on the 6-decimal grid: <= 9 units means < 1e-5


def _trajectory(steps: int, seed: int) -> np.ndarray:
    """(steps, P) weights: moving ones, and ones whose window ranges are 9 and 10 units of 1e-6."""
    rng = np.random.default_rng(seed)
    moving = 0.1 + 1e-4 * rng.standard_normal((steps, 4)).cumsum(axis=0)
    # 0.273923 -> 0.273933 is 10 units, but in float64 the difference is 9.99999999995449e-06:
    # a raw "range < 1e-5" would call it flat; on the grid it is exactly 10 units.
    ten_units = 0.273923 + 1e-6 * (np.arange(steps) % 11)
    nine_units = -0.5 + 1e-6 * (np.arange(steps) % 10)
    frozen = np.full(steps, 0.25)
    return np.round(np.column_stack([moving, ten_units, nine_units, frozen]), 6)


def _nolds_diff(window: np.ndarray) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _, (ks, curve, _) = nolds.lyap_r(
            window, emb_dim=2, lag=1, min_tsep=0, trajectory_len=4, fit="poly", debug_data=True
        )
    assert ks[:2].tolist() == [0, 1]
    return curve[1] - curve[0]


@pytest.mark.parametrize("layout", ["roll", "double"])
def test_ring_buffer_windows_equal_nolds_and_flat_weights_get_zero(layout: str):
    steps, window = 40, 12
    trajectory = _trajectory(steps, seed=0)
    p = trajectory.shape[1]
    # "roll": a (P, W) buffer, time-ordered by a roll at each call (one copy of the buffer).
    # "double": a (P, 2W) buffer written twice, whose time-ordered window is a view (no copy).
    buffer = torch.zeros(p, window if layout == "roll" else 2 * window, dtype=torch.float64)
    for step in range(steps):
        column = step % window
        snapshot = torch.tensor(trajectory[step])
        buffer[:, column] = snapshot
        if layout == "double":
            buffer[:, column + window] = snapshot
        if step + 1 < window:
            continue
        if layout == "roll":
            ordered = buffer.roll(-(column + 1), dims=1)
        else:
            ordered = buffer[:, column + 1 : column + 1 + window]
        result = largest_lyapunov(ordered, tol=BELOW_1E_5, degenerate_value=0.0, **PAPER)
        assert result.exponent.shape == (p,) and result.exponent.dtype == torch.float64
        recent = trajectory[step + 1 - window : step + 1]
        np.testing.assert_array_equal(ordered.numpy(), recent.T)
        assert result.degenerate.tolist() == [False] * 5 + [True, True]
        assert (result.exponent[5:] == 0).all()
        for w in range(5):
            assert abs(result.exponent[w].item() - _nolds_diff(recent[:, w])) <= 1e-12


def test_tol_reads_ranges_on_the_decimal_grid():
    trajectory = torch.tensor(_trajectory(12, seed=1).T)
    strict = largest_lyapunov(trajectory, tol=BELOW_1E_5, **PAPER).degenerate
    inclusive = largest_lyapunov(trajectory, tol=1e-5, **PAPER).degenerate
    assert strict[4:].tolist() == [False, True, True]  # 10 units is not below 1e-5
    assert inclusive[4:].tolist() == [True, True, True]  # ... but it is at most 1e-5
    # Without decimals, ranges are compared as they are: the 10-unit window's float range is
    # just below 1e-5, so tol=9.999999999999e-06 catches it.
    raw = largest_lyapunov(trajectory, tol=9.999999999999e-06, emb_dim=2, trajectory_len=4, fit="diff")
    assert raw.degenerate[4].item()
