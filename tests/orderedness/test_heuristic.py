"""The heuristic: never better than exact, within its gap, exact where it should be, a local optimum."""

import pytest
import torch

from orderedness import exact_orderedness, heuristic_orderedness, pairwise_lower_bound, permute
from orderedness.heuristic import greedy_orders, insertion_search


def random_blocks(batch, n, seed):
    return torch.randn(batch, n, n, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("hidden", [2, 4, 6, 8])
def test_heuristic_is_bounded_by_exact_and_its_gap(hidden):
    blocks = random_blocks(64, hidden + 1, hidden)
    exact = exact_orderedness(blocks, 1)
    found = heuristic_orderedness(blocks, 1)
    assert not found.exact
    assert (found.orderedness <= exact.orderedness + 1e-12).all()
    assert (exact.orderedness - found.orderedness <= found.gap + 1e-12).all()
    # the bound is a lower bound on the exact backward mass
    hidden_blocks = blocks.abs().double()[:, 1:, 1:]
    fixed = exact.backward_mass - torch.tril(permute(hidden_blocks, exact.permutation[:, 1:] - 1), -1).sum((1, 2))
    assert (fixed + pairwise_lower_bound(hidden_blocks) <= exact.backward_mass + 1e-12).all()


@pytest.mark.parametrize("hidden", [1, 2, 3])
def test_heuristic_is_exact_on_small_random_blocks(hidden):
    blocks = random_blocks(500, hidden + 2, 10 + hidden)
    torch.testing.assert_close(heuristic_orderedness(blocks, 2).orderedness,
                               exact_orderedness(blocks, 2).orderedness, rtol=0, atol=1e-12)


def test_heuristic_recovers_a_noisy_feed_forward_order():
    generator = torch.Generator().manual_seed(4)
    n = 9
    upper = torch.triu(torch.rand(20, n, n, generator=generator) + 0.5)
    noisy = upper + 0.05 * torch.rand(20, n, n, generator=generator)
    shuffles = [torch.cat([torch.tensor([0]), 1 + torch.randperm(n - 1, generator=generator)]) for _ in noisy]
    blocks = torch.stack([permute(b, shuffle) for b, shuffle in zip(noisy, shuffles)])
    torch.testing.assert_close(heuristic_orderedness(blocks, 1).orderedness,
                               exact_orderedness(blocks, 1).orderedness, rtol=0, atol=1e-12)


def test_gap_is_zero_when_the_bound_is_met():
    upper = torch.triu(torch.rand(6, 6) + 0.1)
    result = heuristic_orderedness(permute(upper, torch.tensor([0, 3, 1, 5, 2, 4])), 1)
    assert result.orderedness.item() == pytest.approx(1.0) and result.gap.item() == pytest.approx(0.0, abs=1e-15)


def test_insertion_search_ends_in_a_local_optimum():
    blocks = random_blocks(16, 7, 1).abs().double()
    order = insertion_search(blocks, greedy_orders(blocks))
    mass = lambda o: torch.tril(permute(blocks, o), -1).sum((1, 2))  # noqa: E731
    current = mass(order)
    h = blocks.shape[-1]
    for p in range(h):
        for q in range(h):
            moved = order.clone().tolist()
            for row in moved:
                row.insert(q, row.pop(p))
            assert (mass(torch.tensor(moved)) >= current - 1e-12).all(), (p, q)


def test_heuristic_handles_large_and_undefined_blocks():
    blocks = random_blocks(3, 41, 2)
    blocks[1] = 0
    result = heuristic_orderedness(blocks, 1)
    assert result.undefined.tolist() == [False, True, False]
    assert torch.isnan(result.orderedness[1]) and torch.isfinite(result.orderedness[[0, 2]]).all()
    assert (result.gap[[0, 2]] >= 0).all()
    assert (result.permutation[:, 0] == 0).all()
    assert all(sorted(p.tolist()) == list(range(41)) for p in result.permutation)
