"""The sweep's two rankings and its fine-tuning plan, against hand-computed cases."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from branches.spam.finetune import Plan, finetune_plan
from branches.spam.ranking import dense_mask, percentile_threshold, ranked_mask
from branches.spam.sweep import SweepHparams
from pruning.mask import Mask


class Tiny(nn.Module):
    """A 2 -> 2 linear layer (4 weights, 2 biases): what the rankings see."""

    prunable_layer_names = ["fc.weight"]

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(2, 2)


def scores_of(weight: list[float], bias: list[float]) -> dict[str, torch.Tensor]:
    return {"fc.weight": torch.tensor(weight).reshape(2, 2), "fc.bias": torch.tensor(bias)}


def kept(mask: Mask) -> dict[str, list]:
    return {name: t.reshape(-1).int().tolist() for name, t in mask.items()}


def test_percentile_ranks_every_parameter_and_cuts_strictly_below_the_interpolated_percentile():
    dense = dense_mask(Tiny(), "percentile")
    assert sorted(dense.keys()) == ["fc.bias", "fc.weight"]  # biases are ranked too
    scores = scores_of([6.0, 1.0, 4.0, 3.0], [2.0, 5.0])
    # numpy by hand: sorted 1..6, the 50th percentile is at position 0.5 * 5 = 2.5: 3 + 0.5 * (4 - 3) = 3.5
    assert percentile_threshold(scores.values(), 50) == pytest.approx(3.5)
    mask = ranked_mask(scores, dense, 50, "opd", "percentile", [])
    assert kept(mask) == {"fc.weight": [1, 0, 1, 0], "fc.bias": [0, 1]}  # 1, 2, 3 < 3.5 go
    # 40%: position 2.0, threshold exactly 3; 3 itself is not below it and stays
    assert kept(ranked_mask(scores, dense, 40, "opd", "percentile", [])) == {"fc.weight": [1, 0, 1, 1],
                                                                            "fc.bias": [0, 1]}


def test_percentile_keeps_ties_at_the_threshold_so_the_sparsity_can_fall_short():
    dense = dense_mask(Tiny(), "percentile")
    scores = scores_of([0.0, 0.0, 0.0, 0.0], [0.0, 1.0])  # five zeros: the 60th percentile is 0
    mask = ranked_mask(scores, dense, 60, "post_only", "percentile", [])
    assert mask.num_unpruned == 6  # nothing lies strictly below 0: nothing is pruned


def test_other_criteria_remove_the_floor_count_of_every_parameter():
    dense = dense_mask(Tiny(), "percentile")
    scores = scores_of([6.0, 1.0, 4.0, 3.0], [2.0, 5.0])
    # 75% of 6 parameters: floor(4.5) = 4 removed; 60%: floor(3.6) = 3, where round would remove 4
    assert kept(ranked_mask(scores, dense, 75, "magnitude", "percentile", [])) == {"fc.weight": [1, 0, 0, 0],
                                                                                  "fc.bias": [0, 1]}
    assert ranked_mask(scores, dense, 60, "random", "percentile", []).num_unpruned == 3
    # GraSP as published removes the highest: 6 and 5 at 1/3
    assert kept(ranked_mask(scores, dense, 100 / 3, "grasp10", "percentile", [], highest=True)) == \
        {"fc.weight": [0, 1, 1, 1], "fc.bias": [1, 0]}


def test_exact_ranks_the_weights_only_and_removes_round_s_n():
    dense = dense_mask(Tiny(), "exact")
    assert dense.keys() == ["fc.weight"]
    scores = scores_of([6.0, 1.0, 4.0, 3.0], [2.0, 5.0])
    # 62.5% of 4 weights: round(2.5) = 2 (halves to even), the two lowest weights 1 and 3
    assert kept(ranked_mask(scores, dense, 62.5, "opd", "exact", [])) == {"fc.weight": [1, 0, 1, 0]}


def test_ignored_weights_are_not_ranked():
    dense = dense_mask(Tiny(), "percentile")
    scores = scores_of([6.0, 1.0, 4.0, 3.0], [2.0, 5.0])
    mask = ranked_mask(scores, dense, 50, "opd", "percentile", ["fc.weight"])
    assert kept(mask) == {"fc.weight": [1, 1, 1, 1], "fc.bias": [0, 1]}  # 50th percentile of (2, 5) is 3.5


def test_the_authors_ranking_and_ten_ece_bins_are_the_defaults():
    h = SweepHparams()
    assert (h.ranking, h.ece_bins, h.finetune_steps, h.finetune_lr) == ("percentile", 10, None, None)


@pytest.mark.parametrize("structure, criterion, model, steps, lr, plan", [
    ("unstructured", "opd", "fashionmnist_lenet5", None, None, None),  # the authors never tune post hoc
    ("2:4", "opd", "fashionmnist_lenet5", None, None, None),
    ("neurons", "opd", "fashionmnist_lenet5", None, None, Plan("10ep", 0.1 * 1e-3)),
    ("filters", "post_only", "fashionmnist_lenet5", None, None, Plan("10ep", 0.1 * 1e-3)),
    ("neurons", "random", "fashionmnist_lenet5", None, None, Plan("10ep", 0.1 * 1e-4)),
    ("filters", "snip10", "fashionmnist_lenet5", None, None, Plan("10ep", 0.1 * 1e-4)),
    ("filters", "opd", "cifar_resnet_20", None, None, Plan("5ep", 0.1 * 1e-2)),
    ("filters", "synflow", "cifar_resnet_20", None, None, Plan("5ep", 0.1 * 1e-3)),
    ("neurons", "opd", "fashionmnist_lenet5", "0ep", None, None),  # turned off
    ("neurons", "opd", "fashionmnist_lenet5", "2ep", 0.05, Plan("2ep", 0.05)),
    ("unstructured", "magnitude", "fashionmnist_lenet5", "3ep", None, Plan("3ep", 0.1 * 0.1)),
])
def test_the_fine_tuning_plan_per_structure_and_criterion(structure, criterion, model, steps, lr, plan):
    got = finetune_plan(structure, criterion, model, 0.1, steps, lr, iterations_per_epoch=10)
    if plan is None:
        assert got is None
    else:
        assert got.steps == plan.steps and got.lr == pytest.approx(plan.lr)
