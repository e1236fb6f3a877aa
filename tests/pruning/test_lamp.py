"""LAMP (Lee et al. 2021) as a pruning scope: its scores equal the formula, and pruning by them
matches a hand-worked network; every allocation scope is one entry of rounds.ALLOCATIONS."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from pruning import Mask, prune_in_rounds
from pruning.allocation import lamp_removals, lamp_scores
from pruning.rounds import ALLOCATIONS
from pruning.validate import SCOPES


class TwoLayers(nn.Module):
    """A = [1, -2, 3, 0.5] (one row of 4), B = [[40, -10], [20, 1]]: B is ten times A's scale."""

    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Linear(4, 1, bias=False), nn.Linear(2, 2, bias=False)
        with torch.no_grad():
            self.a.weight.copy_(torch.tensor([[1.0, -2.0, 3.0, 0.5]]))
            self.b.weight.copy_(torch.tensor([[40.0, -10.0], [20.0, 1.0]]))
        self.prunable_layer_names = ["a.weight", "b.weight"]


def test_lamp_scores_by_hand():
    # A sorted by w^2: 0.25, 1, 4, 9; tails 14.25, 14, 13, 9
    expected = torch.tensor([1 / 14, 4 / 13, 9 / 9, 0.25 / 14.25], dtype=torch.float64)
    assert torch.allclose(lamp_scores(torch.tensor([1.0, -2.0, 3.0, 0.5])), expected, rtol=0, atol=1e-15)
    assert lamp_scores(torch.zeros(3)).tolist() == [0.0, 0.0, 0.0]  # nothing to normalize by


def test_lamp_scores_equal_the_formula_on_random_weights():
    generator = torch.Generator().manual_seed(0)
    weights = torch.randn(37, generator=generator)
    squared = weights.double() ** 2
    brute = torch.tensor([squared[u] / squared[squared >= squared[u]].sum() for u in range(37)])
    assert torch.allclose(lamp_scores(weights), brute, rtol=1e-12, atol=0)
    assert lamp_scores(weights * 7).allclose(lamp_scores(weights))  # scale-free per layer


def test_pruning_by_lamp_on_a_hand_worked_network():
    model = TwoLayers()
    # the LAMP scores, ranked: B 1 (1/21.01), A 0.5 (0.25/14.25), B -10 (100/2100), A 1 (1/14), B 20 (400/2000),
    # A -2 (4/13), then A 3 and B 40 (1 each: a layer's largest weight scores 1)
    half = prune_in_rounds(model, "magnitude", 0.5, scope="lamp")
    assert half["a.weight"].tolist() == [[False, True, True, False]]
    assert half["b.weight"].tolist() == [[True, False], [True, False]]
    most = prune_in_rounds(model, "magnitude", 0.75, scope="lamp")
    assert most["a.weight"].tolist() == [[False, False, True, False]]
    assert most["b.weight"].tolist() == [[True, False], [False, False]]
    # one global magnitude ranking takes three of A's four (0.5, 1, -2, and B's 1)
    assert prune_in_rounds(model, "magnitude", 0.5, scope="global")["a.weight"].tolist() == [[False, False, True,
                                                                                              False]]
    # over several rounds, the same per-layer counts (LAMP sets them from the start)
    assert prune_in_rounds(model, "magnitude", 0.75, 3, scope="lamp") == most


def test_only_alive_weights_enter_the_sums_and_other_scores_pick_within_layers():
    model = TwoLayers()
    mask = Mask({"a.weight": torch.tensor([[False, True, True, True]]), "b.weight": torch.ones(2, 2, dtype=torch.bool)})
    alive = {("a.weight",): 3, ("b.weight",): 4}
    # alive A: -2, 3, 0.5 -> w^2 4, 9, 0.25: scores 4/13, 9/9, 0.25/13.25 (A's pruned 1 is in no sum); B as
    # before. Remove round(0.5 * 7) = 4: B 1 (1/2101), A 0.5 (0.0189), B -10 (1/21), B 20 (0.2 < A -2's 0.31)
    scores_a = lamp_scores(torch.tensor([-2.0, 3.0, 0.5]))
    assert torch.allclose(scores_a, torch.tensor([4 / 13, 1.0, 0.25 / 13.25], dtype=torch.float64))
    removals = lamp_removals(model, mask, alive, 0.5)
    assert removals == {("a.weight",): 1, ("b.weight",): 3}
    b_scores = sorted(lamp_scores(torch.tensor([40.0, -10.0, 20.0, 1.0])).tolist())
    a_scores = sorted(scores_a.tolist())
    merged = sorted([(s, "a") for s in a_scores] + [(s, "b") for s in b_scores])[:4]
    assert removals == {("a.weight",): sum(1 for _, n in merged if n == "a"),
                        ("b.weight",): sum(1 for _, n in merged if n == "b")}

    def inverse_magnitude(model, mask, data):  # a score that ranks the other way round
        return {name: -model.state_dict()[name].abs() for name in mask}

    chosen = prune_in_rounds(model, inverse_magnitude, 0.5, mask=mask, scope="lamp")
    counts = {name: int(mask[name].sum()) - int(chosen[name].sum()) for name in mask}
    assert counts == {name: removals[(name,)] for name in mask}  # LAMP's counts...
    kept_b = model.b.weight.detach().abs()[chosen["b.weight"]]
    gone_b = model.b.weight.detach().abs()[mask["b.weight"] & ~chosen["b.weight"]]
    assert kept_b.max() <= gone_b.min()  # ...but the score picks which: the largest went


def test_every_allocation_scope_is_one_table_entry():
    assert set(SCOPES) == {"global", "layerwise", *ALLOCATIONS}
    with pytest.raises(Exception, match="lamp"):
        prune_in_rounds(TwoLayers(), "magnitude", 0.5, scope="lampp")
