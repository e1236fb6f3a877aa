"""The column-layout fast paths of the Rosenstein exponent equal what they replace: the fused
squared difference, the first index at or below a limit, the nolds rule through a bound above
the tie limit (with the exact limit only for near-ties), the order-fixed sum over pairs, and the
TISEAN rule's tie detection, each on random inputs against a plain reference."""

import numpy as np
import pytest
import torch

from lyapunov.exact_roots import tie_limit
from lyapunov.neighbours import first_true, nearest_nolds, nearest_tisean
from lyapunov.rosenstein import _squared_difference, _tree_sum


def test_fused_squared_difference_is_the_difference_times_itself_bit_for_bit():
    rng = np.random.default_rng(0)
    a, b = (torch.tensor(rng.standard_normal((64, 33)) * 10.0 ** rng.integers(-100, 100, (64, 33))) for _ in "ab")
    diff = a - b
    assert torch.equal(_squared_difference(a, b, torch.empty_like(a)), diff * diff)


@pytest.mark.parametrize("m", [5, 300])  # ranked in uint8, and in int16
def test_first_true_is_argmax_of_the_mask_and_zero_where_none(m):
    g = torch.Generator().manual_seed(m)
    mask = torch.rand(m, m, 17, generator=g) < 0.05
    mask[:, :, 3] = False
    expected = mask.permute(0, 2, 1).to(torch.uint8).argmax(dim=2)
    assert torch.equal(first_true(mask), expected)


def _nolds_reference(dist2: np.ndarray) -> np.ndarray:
    return np.argmin(np.sqrt(dist2), axis=2)  # numpy's IEEE sqrt, first index among ties


@pytest.mark.parametrize("decimals", [None, 1, 2])
def test_nolds_rule_equals_numpy_on_random_and_rounded_distances(decimals):
    rng = np.random.default_rng(decimals or 0)
    x = rng.standard_normal((300, 24)).cumsum(axis=1)
    if decimals is not None:
        x = np.round(x, decimals)
    d = x[:, :, None] - x[:, None, :]
    dist2 = d * d + np.roll(d * d, 1, axis=(1, 2))
    dist2[:, np.arange(24), np.arange(24)] = np.inf
    assert torch.equal(nearest_nolds(torch.tensor(dist2)), torch.tensor(_nolds_reference(dist2)))


def test_nolds_rule_takes_the_exact_limit_for_near_ties_within_the_bound():
    # Distances between the nearest and the bound above the tie limit: some tie (same root), some
    # do not; the earlier index must win exactly when it ties.
    rng = np.random.default_rng(5)
    base = rng.random((400, 1)) * 10.0 ** rng.integers(-5, 5, (400, 1))
    steps = rng.integers(1, 12, (400, 6))
    dist2 = np.broadcast_to(base, (400, 6)).copy()
    for k in range(6):
        for _ in range(int(steps[:, k].max())):
            dist2[:, k] = np.where(steps[:, k] > 0, np.nextafter(dist2[:, k], np.inf), dist2[:, k])
            steps[:, k] -= 1
    dist2[:, 5] = base[:, 0]  # the exact nearest comes last
    dist2 = dist2[:, None, :]
    limits = tie_limit(torch.tensor(dist2.min(axis=2)))
    assert (torch.tensor(dist2[:, 0, :5]) <= limits).any() and (torch.tensor(dist2[:, 0, :5]) > limits).any()
    assert torch.equal(nearest_nolds(torch.tensor(dist2)), torch.tensor(_nolds_reference(dist2)))


def test_tree_sum_is_a_sum_and_the_same_whatever_the_other_dimensions():
    g = torch.Generator().manual_seed(0)
    terms = torch.randn(37, 5, 40, generator=g, dtype=torch.float64)
    whole = _tree_sum(terms.clone())
    torch.testing.assert_close(whole, terms.sum(dim=0), rtol=1e-13, atol=1e-13)
    parts = torch.cat([_tree_sum(terms[:, :, i : i + 3].clone()) for i in range(0, 40, 3)], dim=1)
    assert torch.equal(parts, whole)


def test_tisean_rule_detects_every_tie_at_the_minimum():
    # On 2-decimal data many references have several candidates at exactly the nearest distance;
    # the tie-broken choice must be one of them, and untied references get the unique nearest.
    rng = np.random.default_rng(1)
    x = np.round(rng.random((200, 30)), 2)
    u = (x - x.min(axis=1, keepdims=True)) / (x.max(axis=1, keepdims=True) - x.min(axis=1, keepdims=True))
    m = 27
    d = u[:, :m + 1, None] - u[:, None, :m + 1]
    dist2 = (d * d)[:, :m, :m] + (d * d)[:, 1:, 1:]
    dist2[:, np.arange(m), np.arange(m)] = np.inf
    found = nearest_tisean(torch.tensor(dist2), torch.tensor(u), 1)
    positive = np.where(dist2 > 0, dist2, np.inf)
    nearest = positive.min(axis=2)
    chosen = np.take_along_axis(dist2, found.index.numpy()[:, :, None], axis=2)[:, :, 0]
    paired = found.paired.numpy()
    assert paired.any() and (chosen[paired] == nearest[paired]).all()
    untied = (positive == nearest[:, :, None]).sum(axis=2) == 1
    np.testing.assert_array_equal(found.index.numpy()[paired & untied], positive.argmin(axis=2)[paired & untied])


@pytest.mark.parametrize("neighbours, trajectory_len", [("nolds", 20), ("nolds", 4), ("tisean", 4), ("tisean", 12)])
def test_both_pair_layouts_give_the_same_bits(monkeypatch, neighbours, trajectory_len):
    """divergence_curve follows long windows series first and short ones batch last: on the same
    series (rounded, so some pairs sit at distance zero) both give the same curve, bit for bit."""
    from lyapunov import rosenstein
    rng = np.random.default_rng(3)
    x = torch.tensor(np.round(rng.standard_normal((300, 40)).cumsum(axis=1), 1))
    options = dict(trajectory_len=trajectory_len, neighbours=neighbours, fit="diff", backend="tensor")
    results = []
    for span in (1, 10 ** 6):  # every window series first; every window batch last
        monkeypatch.setattr(rosenstein, "SERIES_FIRST_SPAN", span)
        results.append(rosenstein.largest_lyapunov(x, **options))
    assert torch.equal(results[0].curve, results[1].curve)
    assert torch.equal(results[0].degenerate, results[1].degenerate)
