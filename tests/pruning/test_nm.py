"""pruning.nm: N of every M consecutive inputs of every row survive, the highest-scoring ones."""

from __future__ import annotations

import pytest
import torch

from foundations.errors import UserError
from pruning.mask import Mask
from pruning.nm import nm_mask, parse_pattern


def dense(**shapes) -> Mask:
    return Mask({name: torch.ones(shape, dtype=torch.bool) for name, shape in shapes.items()})


def test_a_hand_computed_row():
    scores = {"w": torch.tensor([[0.1, 0.9, 0.5, 0.2, 3.0, 1.0, 1.0, -1.0]])}
    mask = nm_mask(scores, dense(w=(1, 8)), 2, 4)
    assert mask["w"].tolist() == [[False, True, True, False, True, True, False, False]]  # tie: lower index


@pytest.mark.parametrize("n, m", [(2, 4), (1, 4), (3, 8)])
def test_exactly_n_of_every_m_for_linear_and_conv_weights(n, m):
    g = torch.Generator().manual_seed(0)
    scores = {"fc": torch.randn(6, 16, generator=g), "conv": torch.randn(5, 4, 3, 2, generator=g)}
    mask = nm_mask(scores, dense(fc=(6, 16), conv=(5, 4, 3, 2)), n, m)
    for name, s in scores.items():
        kept = mask[name].reshape(-1, m)
        assert (kept.sum(dim=1) == n).all()
        groups = s.reshape(-1, m)
        lowest_kept = groups[kept].reshape(-1, n).min(dim=1).values
        assert (lowest_kept >= groups[~kept].reshape(-1, m - n).max(dim=1).values).all()


def test_ignored_layers_stay_and_pruned_entries_go_first():
    start = Mask({"a": torch.tensor([[True, False, True, True]]), "b": torch.ones(2, 3, dtype=torch.bool)})
    scores = {"a": torch.tensor([[1.0, 9.0, 2.0, 0.5]]), "b": torch.zeros(2, 3)}
    mask = nm_mask(scores, start, 2, 4, layers_to_ignore=["b"])
    assert mask["a"].tolist() == [[True, False, True, False]]  # the pruned 9.0 does not come back
    assert mask["b"].all()


def test_rows_that_are_not_whole_groups_are_refused_naming_the_layer():
    with pytest.raises(UserError, match=r"conv1.weight has 25 inputs.*--prune_layers_to_ignore=conv1.weight"):
        nm_mask({"conv1.weight": torch.ones(6, 1, 5, 5)}, dense(**{"conv1.weight": (6, 1, 5, 5)}), 2, 4)


@pytest.mark.parametrize("text", ["4:2", "2:2", "0:4", "2-4", "a:b"])
def test_bad_patterns_are_user_errors(text):
    with pytest.raises(UserError, match="N:M"):
        parse_pattern(text)
