"""MATLAB's ischange(x, 'mean') (lyapunov/change_points.py) on series whose change points are known
by hand: the cost is the squared residuals about each segment's mean plus 1 per change point."""

from __future__ import annotations

import itertools

import pytest
import torch

from lyapunov.change_points import has_change_point, ischange_mean


def brute_force(x: list[float], threshold: float = 1.0) -> list[int]:
    """Every segmentation tried: the starts of the segments after the first, of least cost."""
    n, best = len(x), (float("inf"), [])

    def cost(part):
        mean = sum(part) / len(part)
        return sum((v - mean) ** 2 for v in part)

    for k in range(n):
        for cuts in itertools.combinations(range(1, n), k):
            bounds = [0, *cuts, n]
            total = sum(cost(x[a:b]) for a, b in zip(bounds, bounds[1:])) + threshold * k
            if total < best[0] - 1e-12:
                best = (total, list(cuts))
    return best[1]


def test_a_step_is_a_change_exactly_when_it_pays_for_the_threshold():
    # [0]*4 + [h]*4: one segment costs 8 (h/2)^2 = 2 h^2, two cost 0 + 1: a change iff h > 1/sqrt(2).
    for height, expected in ((0.70, []), (0.72, [4]), (3.0, [4])):
        x = torch.tensor([0.0] * 4 + [height] * 4, dtype=torch.float64)
        assert ischange_mean(x).nonzero().squeeze(1).tolist() == expected, height
        assert bool(has_change_point(x)) == bool(expected)


def test_the_documented_example_three_levels():
    # MathWorks' example: ones(1,5), 25*ones(1,5), 50*ones(1,5) plus noise in [0, 1): changes at 6 and 11 (1-based).
    noise = torch.tensor([0.81, 0.91, 0.13, 0.91, 0.63, 0.10, 0.28, 0.55, 0.96, 0.96, 0.16, 0.97, 0.96, 0.49, 0.80],
                         dtype=torch.float64)
    x = torch.cat([torch.ones(5), 25 * torch.ones(5), 50 * torch.ones(5)]).double() + noise
    assert ischange_mean(x).nonzero().squeeze(1).tolist() == [5, 10]


def test_a_bump_needs_two_changes_and_no_single_split_finds_it():
    # [0]*3 + [1.2]*2 + [0]*3: the whole costs 2.16, the best single split 1.728 + 1, the two changes 0 + 2.
    x = [0.0] * 3 + [1.2] * 2 + [0.0] * 3
    assert brute_force(x) == [3, 5]
    assert ischange_mean(torch.tensor(x, dtype=torch.float64)).nonzero().squeeze(1).tolist() == [3, 5]


@pytest.mark.parametrize("seed", range(5))
def test_batched_series_agree_with_the_brute_force(seed):
    generator = torch.Generator().manual_seed(seed)
    x = (torch.rand(6, 9, generator=generator, dtype=torch.float64) * 2).round(decimals=1)
    x[:, 5:] += torch.rand(6, 1, generator=generator, dtype=torch.float64) * 3
    marks = ischange_mean(x)
    for row in range(6):
        assert marks[row].nonzero().squeeze(1).tolist() == brute_force(x[row].tolist())
    assert torch.equal(has_change_point(x), marks.any(dim=1))
    assert torch.equal(has_change_point(x, threshold=100.0), torch.zeros(6, dtype=torch.bool))
