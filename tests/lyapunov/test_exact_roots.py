"""Correctly rounded roots and root ties on float64 tensors, against numpy's IEEE sqrt."""

import numpy as np
import torch

from lyapunov.exact_roots import sqrt_rn, tie_limit
from lyapunov.neighbours import nearest_nolds


def _values(count: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    spread = rng.random(count) * 10.0 ** rng.integers(-250, 250, count)
    # Squared distances of 1-decimal and 6-decimal data, where ties of the root are common.
    tenths = (rng.integers(0, 60, (count, 2)) / 10.0) ** 2
    micro = (rng.integers(0, 3000, (count, 2)) / 1e6) ** 2
    edges = [0.0, 0.5, 0.5000000000000001, 1.0, 2.0, 4.0, 0.25, 1e-280, 1e290]
    edges += list(np.nextafter(np.array([1.0, 2.0, 4.0, 0.25]), 0.0))
    return np.concatenate([spread, tenths.sum(axis=1), micro.sum(axis=1), edges])


def test_torch_sqrt_is_within_one_ulp_as_the_correction_assumes():
    a = _values(200_000, 0)
    ulps = np.abs(torch.sqrt(torch.tensor(a)).numpy().view(np.int64) - np.sqrt(a).view(np.int64))
    assert ulps.max() <= 1


def test_sqrt_rn_equals_numpy_sqrt_bit_for_bit():
    a = _values(400_000, 1)
    np.testing.assert_array_equal(sqrt_rn(torch.tensor(a)).numpy(), np.sqrt(a))


def test_tie_limit_is_the_last_float_with_the_same_root():
    a = _values(200_000, 2)
    limit = tie_limit(torch.tensor(a)).numpy()
    assert (limit >= a).all()
    np.testing.assert_array_equal(np.sqrt(limit), np.sqrt(a))
    assert (np.sqrt(np.nextafter(limit, np.inf)) > np.sqrt(a)).all()


def test_nolds_rule_ties_distinct_squares_whose_roots_round_alike():
    # From 1-decimal data: the vector (-1.6, 1.3) is at these squared distances from (-0.9, 1.2)
    # and (-1.1, 0.8), one ulp apart, while both roots round to 0.7071067811865476. nolds
    # (argmin over the roots) takes the earlier one; torch's own sqrt(0.5) is one ulp low on
    # some CPU builds and would make the later one strictly nearer.
    inf = float("inf")
    dist2 = torch.tensor([[[inf, 0.5000000000000001, 0.5], [0.5000000000000001, inf, 2.0], [0.5, 2.0, inf]]])
    expected = np.argmin(np.sqrt(dist2[0].numpy()), axis=1)
    assert expected.tolist() == [1, 0, 0]
    assert nearest_nolds(dist2)[0].tolist() == expected.tolist()
