"""The compiled loop (lyapunov.rosenstein_loop) against the tensor passes and nolds."""

import warnings

import numpy as np
import pytest
import torch

from lyapunov.rosenstein import largest_lyapunov
from lyapunov.rosenstein_loop import BLOCK, divergence_curves

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # nolds imports pkg_resources, which warns
    import nolds


def _both(x: torch.Tensor, **params):
    return (largest_lyapunov(x, backend="loop", **params), largest_lyapunov(x, backend="tensor", **params))


def test_loop_and_tensor_passes_pick_the_same_pairs():
    # Rounded data tie often (and sit at distance zero); emb_dim reaches 10, past numpy's
    # sequential sum. A different pair anywhere would move the curve by far more than 1e-13.
    rng = np.random.default_rng(11)
    for case in range(150):
        params = dict(emb_dim=int(rng.integers(1, 11)), lag=int(rng.integers(1, 4)),
                      min_tsep=int(rng.integers(0, 5)), trajectory_len=int(rng.integers(2, 16)))
        walks = rng.standard_normal((8, int(rng.integers(60, 120)))).cumsum(axis=1)
        x = torch.tensor(np.round(walks, 1) if case % 2 else walks)
        loop, tensor = _both(x, **params)
        assert torch.equal(torch.isinf(loop.curve), torch.isinf(tensor.curve)), params
        finite = torch.isfinite(tensor.curve)
        torch.testing.assert_close(loop.curve[finite], tensor.curve[finite], rtol=0, atol=1e-13)
        torch.testing.assert_close(loop.exponent, tensor.exponent, rtol=0, atol=1e-12)


def test_ties_of_correctly_rounded_roots_go_to_the_earliest_candidate():
    # Delay vectors (x[i], x[i + 10]): vector 2 = (-1.6, 1.3) is at squared distance
    # 0.5000000000000001 from vector 0 = (-0.9, 1.2) and 0.5 from vector 1 = (-1.1, 0.8). Both
    # roots round to the same float, so nolds (argmin over the roots) pairs 2 with 0, where an
    # argmin over the squares would take 1. Every other vector is far away.
    x = np.arange(30, dtype=np.float64) * 7.0 + 50.0
    x[[0, 10, 1, 11, 2, 12]] = [-0.9, 1.2, -1.1, 0.8, -1.6, 1.3]
    square = lambda i, j: (x[i] - x[j]) ** 2 + (x[i + 10] - x[j + 10]) ** 2  # noqa: E731
    assert square(2, 0) > square(2, 1) and np.sqrt(square(2, 0)) == np.sqrt(square(2, 1))
    params = dict(emb_dim=2, lag=10, min_tsep=0, trajectory_len=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _, (_, expected, _) = nolds.lyap_r(x, fit="poly", debug_data=True, **params)
    curve = divergence_curves(x[None], **params)[0][0]
    np.testing.assert_allclose(curve, expected, rtol=0, atol=1e-12)
    # The later candidate would have given another curve.
    x_later = x.copy()
    x_later[0] += 1e-3  # vector 0 now strictly farther: 2 pairs with 1
    assert np.abs(divergence_curves(x_later[None], **params)[0][0] - curve).max() > 1e-6


@pytest.mark.parametrize("scale", [1e40, 1e-40, 1e-160, 1e200])
def test_products_outside_the_safe_range_take_their_logarithms_one_by_one(scale):
    # Squared distances above 2**62 or below 2**-62 (down to subnormals at 1e-160, up to
    # overflow at 1e200), and series where only some blocks are outside: the loop must give
    # what one logarithm per pair gives.
    rng = np.random.default_rng(5)
    walks = rng.standard_normal((6, 3 * BLOCK + 30)).cumsum(axis=1)
    walks[3:, : BLOCK] *= scale  # only the first block's pairs outside, in those series
    walks[:3] *= scale
    loop, tensor = _both(torch.tensor(walks), trajectory_len=8)
    assert torch.equal(torch.isinf(loop.curve), torch.isinf(tensor.curve))
    finite = torch.isfinite(tensor.curve)
    torch.testing.assert_close(loop.curve[finite], tensor.curve[finite], rtol=1e-14, atol=1e-13)
    if scale == 1e200:
        assert torch.isposinf(loop.curve[:3]).all()  # squared distances overflow: log inf


def test_threads_share_the_series_without_changing_a_bit():
    rng = np.random.default_rng(2)
    series = np.round(rng.standard_normal((101, 40)).cumsum(axis=1), 2)
    skip = np.zeros(101, dtype=bool)
    skip[::9] = True
    params = dict(emb_dim=3, lag=1, min_tsep=1, trajectory_len=6, skip=skip)
    alone, _ = divergence_curves(series, threads=1, **params)
    np.testing.assert_array_equal(divergence_curves(series, threads=3, **params)[0], alone)
    assert np.isnan(alone[skip]).all() and not np.isnan(alone[~skip]).any()


@pytest.mark.parametrize("fit_offset", [0, 3])
def test_the_cpu_fit_equals_the_tensor_fit(fit_offset):
    from lyapunov.rosenstein import _least_squares_slope
    from lyapunov.rosenstein_loop import least_squares_slopes

    rng = np.random.default_rng(4)
    curve = rng.standard_normal((500, 12)).cumsum(axis=1)
    curve[rng.random(curve.shape) < 0.2] = -np.inf  # steps without a pair at a distance > 0
    curve[::50] = -np.inf  # no point at all
    curve[1::50, 4:] = -np.inf  # too few points after the offset
    ours = least_squares_slopes(curve, fit_offset)
    expected = _least_squares_slope(torch.tensor(curve), fit_offset).numpy()
    np.testing.assert_array_equal(np.isnan(ours), np.isnan(expected))
    assert np.isnan(ours[::50]).all() and (fit_offset == 0 or np.isnan(ours[1::50]).all())
    finite = ~np.isnan(expected)
    np.testing.assert_allclose(ours[finite], expected[finite], rtol=1e-12, atol=1e-14)


def test_the_tisean_rule_in_the_loop_equals_the_tensor_passes():
    # Weight-like 6-decimal windows (ties and duplicates), 1-decimal noise, a small alphabet
    # (exact duplicates, and references TISEAN never settles), constant windows.
    rng = np.random.default_rng(8)
    walks = np.round(0.05 + 1e-5 * rng.standard_normal((300, 50)).cumsum(axis=1), 6)
    noise = np.round(rng.standard_normal((100, 50)), 1)
    alphabet = rng.integers(0, 3, (100, 50)).astype(np.float64)
    x = torch.tensor(np.concatenate([walks, noise, alphabet, np.full((4, 50), 0.25)]))
    for params in (dict(trajectory_len=4, fit="diff"), dict(emb_dim=3, lag=2, min_tsep=3, trajectory_len=9)):
        loop, tensor = _both(x, neighbours="tisean", **params)
        assert torch.equal(loop.degenerate, tensor.degenerate)
        assert loop.degenerate[400:].any() and not loop.degenerate[:300].all()
        assert torch.equal(torch.isfinite(loop.curve), torch.isfinite(tensor.curve))
        finite = torch.isfinite(tensor.curve)
        torch.testing.assert_close(loop.curve[finite], tensor.curve[finite], rtol=0, atol=1e-13)
        torch.testing.assert_close(loop.exponent, tensor.exponent, rtol=0, atol=1e-12)


def test_calls_from_several_threads_at_once_give_what_each_gives_alone():
    # A stack's runs live in threads: each may call the loop (which starts its own threads).
    from concurrent.futures import ThreadPoolExecutor

    rng = np.random.default_rng(9)
    batches = [torch.tensor(rng.standard_normal((200, 40)).cumsum(axis=1)) for _ in range(4)]
    rules = ["nolds", "tisean", "nolds", "tisean"]
    alone = [largest_lyapunov(x, neighbours=rule, trajectory_len=5) for x, rule in zip(batches, rules)]
    with ThreadPoolExecutor(4) as pool:
        together = list(pool.map(lambda x, rule: largest_lyapunov(x, neighbours=rule, trajectory_len=5),
                                 batches, rules))
    for one, other in zip(alone, together):
        assert torch.equal(one.curve, other.curve) and torch.equal(one.exponent, other.exponent)
