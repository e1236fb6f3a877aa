"""Wanda's scores and masks equal |W| · ‖X‖₂ by hand, with the inputs of a later layer captured
through the earlier layer as already pruned."""

from __future__ import annotations

import torch
from torch import nn

from pruning.mask import Mask
from pruning.post_training.calibration import CalibrationData
from pruning.post_training.wanda import prune_rows, wanda_metric, wanda_prune


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.fc1, self.fc2 = nn.Linear(8, 6), nn.Linear(6, 4)

    def forward(self, x):
        return self.fc2(torch.relu(self.fc1(x)))


def by_hand_row_mask(scores, removed_per_row):
    order = torch.sort(scores, dim=1, stable=True).indices
    keep = torch.ones_like(scores, dtype=torch.bool)
    keep.scatter_(1, order[:, :removed_per_row], False)
    return keep


def test_scores_and_masks_by_hand_through_the_pruned_first_layer():
    model = Tiny().double()
    x = torch.randn(10, 8, dtype=torch.float64) * torch.linspace(0.1, 4, 8, dtype=torch.float64)
    mask = Mask({"fc1.weight": torch.ones(6, 8, dtype=torch.bool), "fc2.weight": torch.ones(4, 6, dtype=torch.bool)})
    pruned = wanda_prune(model, mask, {"fc1.weight": 24, "fc2.weight": 12}, CalibrationData(x, batch_size=3))

    scores1 = model.fc1.weight.abs() * x.norm(dim=0)[None, :]
    keep1 = by_hand_row_mask(scores1, 4)
    assert torch.equal(pruned["fc1.weight"], keep1)
    hidden = torch.relu(x @ (model.fc1.weight * keep1).T + model.fc1.bias)  # through the pruned fc1
    scores2 = model.fc2.weight.abs() * hidden.norm(dim=0)[None, :]
    assert torch.equal(pruned["fc2.weight"], by_hand_row_mask(scores2, 3))
    squares = hidden.square().sum(0)
    assert torch.allclose(wanda_metric(model.fc2.weight, squares), scores2)
    assert torch.equal(model.fc1.weight != 0, torch.ones(6, 8, dtype=torch.bool))  # the model is not changed


def test_layer_group_and_n_m():
    model = Tiny().double()
    x = torch.randn(10, 8, dtype=torch.float64)
    mask = Mask({"fc1.weight": torch.ones(6, 8, dtype=torch.bool)})
    layer = wanda_prune(model, mask, {"fc1.weight": 20}, CalibrationData(x), group="layer")["fc1.weight"]
    scores = (model.fc1.weight.abs() * x.norm(dim=0)[None, :]).flatten()
    expected = torch.ones(48, dtype=torch.bool)
    expected[torch.sort(scores, stable=True).indices[:20]] = False
    assert torch.equal(layer.flatten(), expected)
    nm = wanda_prune(model, mask, {"fc1.weight": 0}, CalibrationData(x), nm=(2, 4))["fc1.weight"]
    groups = (model.fc1.weight.abs() * x.norm(dim=0)[None, :]).reshape(-1, 4)
    assert torch.all(nm.reshape(-1, 4).sum(1) == 2)
    kept = torch.sort(groups, dim=1, descending=True, stable=True).indices[:, :2]
    assert torch.equal(nm.reshape(-1, 4), torch.zeros_like(groups, dtype=torch.bool).scatter_(1, kept, True))


def test_prune_rows_spreads_an_uneven_count_and_skips_dead_entries():
    scores = torch.arange(12.0).view(3, 4)
    alive = torch.ones(3, 4, dtype=torch.bool)
    alive[0, 3] = False
    result = prune_rows(scores, alive, 4)
    assert int(result.sum()) == 11 - 4
    assert result.sum(1).tolist() == [1, 3, 3]  # rows lose 2, 1, 1 of the alive; row 0's dead entry stays off
