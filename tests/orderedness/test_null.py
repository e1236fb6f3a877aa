"""The shuffled-entries null: same values, new places, seeded."""

import pytest
import torch

from foundations.errors import UserError
from orderedness import shuffled_entries


def test_same_values_and_sparsity_in_new_places():
    blocks = torch.randn(4, 6, 6)
    blocks[blocks.abs() < 0.7] = 0
    shuffled = shuffled_entries(blocks, seed=1)
    assert shuffled.shape == blocks.shape
    for before, after in zip(blocks, shuffled):
        assert torch.equal(before.flatten().sort().values, after.flatten().sort().values)
    assert not torch.equal(shuffled, blocks)


def test_seeded_and_distinct_per_matrix():
    blocks = torch.arange(2 * 25, dtype=torch.float32).view(2, 5, 5)
    first = shuffled_entries(blocks, seed=7)
    assert torch.equal(first, shuffled_entries(blocks, seed=7))
    assert not torch.equal(first, shuffled_entries(blocks, seed=8))
    assert not torch.equal(first[0], first[1] - 25)  # each matrix its own permutation


def test_keep_diagonal():
    block = torch.randn(5, 5)
    shuffled = shuffled_entries(block, seed=0, keep_diagonal=True)
    assert torch.equal(shuffled.diagonal(), block.diagonal())
    off = ~torch.eye(5, dtype=torch.bool)
    assert torch.equal(shuffled[off].sort().values, block[off].sort().values)


def test_rejects_non_square():
    with pytest.raises(UserError, match="square"):
        shuffled_entries(torch.zeros(3, 4), seed=0)
