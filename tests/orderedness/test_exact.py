"""Exact orderedness (the subset DP) against brute force, a hand count and known structure."""

import itertools

import pytest
import torch

from foundations.errors import UserError
from orderedness import EXACT_LIMIT, brute_force_orderedness, exact_orderedness, orderedness, permute
from orderedness import exact as exact_module


def python_orderedness(block: torch.Tensor, num_outputs: int) -> float:
    """The definition, one order at a time in plain Python: the oracle of the brute force."""
    a = block.abs().tolist()
    n = len(a)
    best = float("inf")
    for hidden in itertools.permutations(range(num_outputs, n)):
        order = list(range(num_outputs)) + list(hidden)
        best = min(best, sum(a[order[i]][order[j]] for i in range(n) for j in range(i)))
    return 1 - best / sum(map(sum, a))


def hidden_shuffle(n: int, num_outputs: int, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    hidden = num_outputs + torch.randperm(n - num_outputs, generator=generator)
    return torch.cat([torch.arange(num_outputs), hidden])


def test_hand_counted_block():
    # O = 1, H = 2. Order [0, 1, 2] leaves 4 + 7 + 8 = 19 below the diagonal; [0, 2, 1] leaves
    # A[2,0] + A[1,0] + A[1,2] = 7 + 4 + 6 = 17. Total 45, diagonal 1 + 5 + 9 = 15.
    block = torch.tensor([[1.0, 2, 3], [4, 5, 6], [7, 8, 9]])
    result = exact_orderedness(-block, num_outputs=1)  # magnitudes: the sign does not matter
    assert result.orderedness.item() == pytest.approx(1 - 17 / 45)
    assert result.permutation.tolist() == [0, 2, 1]
    assert result.backward_mass.item() == 17 and result.total_mass.item() == 45
    assert result.diagonal_mass.item() == 15 and result.diagonal_fraction.item() == pytest.approx(1 / 3)
    assert result.exact and result.gap.item() == 0 and not result.undefined.item()


@pytest.mark.parametrize("hidden", [0, 1, 2, 3, 4])
def test_brute_force_matches_the_definition(hidden):
    blocks = torch.randn(6, hidden + 2, hidden + 2, generator=torch.Generator().manual_seed(hidden))
    result = brute_force_orderedness(blocks, num_outputs=2)
    expected = torch.tensor([python_orderedness(b, 2) for b in blocks], dtype=torch.float64)
    torch.testing.assert_close(result.orderedness, expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("hidden", range(8))
@pytest.mark.parametrize("kind", ["gaussian", "sparse", "ties"])
def test_dp_equals_brute_force_on_a_batch(hidden, kind):
    generator = torch.Generator().manual_seed(100 * hidden + len(kind))
    n = hidden + 2
    if kind == "ties":  # few distinct values: many orders share the optimum
        blocks = torch.randint(0, 3, (12, n, n), generator=generator).float()
    else:
        blocks = torch.randn(12, n, n, generator=generator)
        if kind == "sparse":
            blocks[torch.rand(12, n, n, generator=generator) < 0.6] = 0
    exact = exact_orderedness(blocks, num_outputs=2)
    brute = brute_force_orderedness(blocks, num_outputs=2)
    torch.testing.assert_close(exact.orderedness, brute.orderedness, rtol=0, atol=1e-12, equal_nan=True)
    assert torch.equal(exact.undefined, brute.undefined)
    # the permutation it returns scores what it reports
    rescored = torch.tril(permute(blocks.abs().double(), exact.permutation), -1).sum((1, 2))
    torch.testing.assert_close(rescored, exact.backward_mass, rtol=0, atol=1e-12)
    assert sorted(exact.permutation[0].tolist()) == list(range(n))


@pytest.mark.parametrize("num_outputs, hidden", [(1, 6), (2, 9), (0, 5)])
def test_a_hidden_shuffled_upper_triangle_scores_one_and_is_unshuffled(num_outputs, hidden):
    n = num_outputs + hidden
    generator = torch.Generator().manual_seed(n)
    upper = torch.triu(torch.rand(n, n, generator=generator) + 0.1)  # every upper entry positive
    shuffle = hidden_shuffle(n, num_outputs, seed=n)
    block = permute(upper, shuffle)
    result = exact_orderedness(block, num_outputs)
    assert result.orderedness.item() == pytest.approx(1.0, abs=1e-15)
    # positive upper entries make the order unique: it must undo the shuffle exactly
    assert torch.equal(permute(block, result.permutation), upper)


def test_invariant_to_relabelling_hidden_units():
    blocks = torch.randn(8, 9, 9, generator=torch.Generator().manual_seed(3))
    reference = exact_orderedness(blocks, num_outputs=2).orderedness
    for seed in range(3):
        shuffled = permute(blocks, hidden_shuffle(9, 2, seed))
        torch.testing.assert_close(exact_orderedness(shuffled, 2).orderedness, reference, rtol=0, atol=1e-12)


def test_diagonal_only_scores_one():
    block = torch.diag(torch.tensor([3.0, -1.0, 2.0, 0.5]))
    result = exact_orderedness(block, num_outputs=1)
    assert result.orderedness.item() == 1.0
    assert result.diagonal_mass.item() == 6.5 and result.diagonal_fraction.item() == 1.0


def test_all_zero_block_is_undefined_not_a_crash():
    blocks = torch.zeros(3, 5, 5)
    blocks[1, 0, 3] = 1.0
    blocks[2, 1, 1] = float("nan")
    result = exact_orderedness(blocks, num_outputs=1)
    assert result.undefined.tolist() == [True, False, True]
    assert torch.isnan(result.orderedness[[0, 2]]).all() and result.orderedness[1].item() == 1.0
    assert torch.isnan(result.gap[0]) and result.total_mass[0].item() == 0
    assert result.permutation[0].tolist() == list(range(5))  # a valid permutation all the same


def test_outputs_stay_first_even_when_moving_them_would_score_higher():
    # The only weight runs from the output (column 0) into the hidden unit (row 1): with the output
    # first it lies below the diagonal. Putting the hidden unit first would score 1; it is not allowed.
    block = torch.tensor([[0.0, 0.0], [5.0, 0.0]])
    result = exact_orderedness(block, num_outputs=1)
    assert result.orderedness.item() == 0.0 and result.permutation.tolist() == [0, 1]
    assert exact_orderedness(block, num_outputs=0).orderedness.item() == 1.0


def test_output_order_is_kept_and_counted():
    # two outputs whose mutual weights point backward (row 1 <- column 0) and no hidden units to move
    block = torch.tensor([[0.0, 1.0, 0.0], [3.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    result = exact_orderedness(block, num_outputs=2)
    assert result.permutation.tolist() == [0, 1, 2]
    assert result.orderedness.item() == pytest.approx(1 - 3 / 4)
    batch = exact_orderedness(torch.randn(5, 7, 7), num_outputs=3)
    assert (batch.permutation[:, :3] == torch.arange(3)).all()


def test_leading_batch_dimensions_and_chunks(monkeypatch):
    blocks = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(5))
    whole = exact_orderedness(blocks, num_outputs=1)
    assert whole.orderedness.shape == (2, 3) and whole.permutation.shape == (2, 3, 8)
    monkeypatch.setattr(exact_module, "_BYTES_PER_CHUNK", 1)  # one matrix per chunk
    one_by_one = exact_orderedness(blocks, num_outputs=1)
    assert torch.equal(whole.orderedness, one_by_one.orderedness)
    single = exact_orderedness(blocks[1, 2], num_outputs=1)
    assert single.orderedness.shape == () and single.orderedness == whole.orderedness[1, 2]


def test_float32_on_request():
    block = torch.randn(6, 6, generator=torch.Generator().manual_seed(9))
    low = exact_orderedness(block, 1, dtype=torch.float32)
    assert low.orderedness.dtype == torch.float32
    assert low.orderedness.item() == pytest.approx(exact_orderedness(block, 1).orderedness.item(), abs=1e-6)


def test_bad_input_and_the_exact_limit():
    with pytest.raises(UserError, match="square"):
        orderedness(torch.zeros(3, 4), 1)
    with pytest.raises(UserError, match="num_outputs"):
        exact_orderedness(torch.zeros(3, 3), 4)
    big = torch.rand(EXACT_LIMIT + 2, EXACT_LIMIT + 2)
    with pytest.raises(UserError, match="allow_heuristic"):
        orderedness(big, 1)
    assert not orderedness(big, 1, allow_heuristic=True).exact
    small = torch.rand(7, 7)
    with pytest.raises(UserError, match="exact limit of 5"):
        orderedness(small, 1, exact_limit=5)
    assert orderedness(small, 1).exact
