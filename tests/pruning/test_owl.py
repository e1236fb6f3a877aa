"""OWL's layerwise sparsities equal the paper code's formula on a hand-worked network."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from pruning.mask import Mask
from pruning.post_training.calibration import CalibrationData
from pruning.post_training.owl import outlier_ratio, owl_densities, owl_removals


def test_densities_by_hand():
    # ratios 0.1, 0.3, 0.2 -> scaled to [0, 2λ]: 0, 0.16, 0.08 (λ = 0.08), mean 0.08 -> 0.5 + (-0.08, 0.08, 0)
    assert owl_densities([0.1, 0.3, 0.2], [10, 10, 10], 0.5, 0.08) == pytest.approx([0.42, 0.58, 0.5])
    # unequal sizes: the mean is weighted by size (3 * 0 + 1 * 0.16) / 4 = 0.04
    assert owl_densities([0.0, 1.0], [30, 10], 0.5, 0.08) == pytest.approx([0.46, 0.62])
    assert owl_densities([0.2, 0.2], [1, 1], 0.3, 0.08) == pytest.approx([0.3, 0.3])


def test_outlier_ratio_by_hand():
    values = torch.tensor([1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 11.0])  # mean 2: above 2 x 2 = 4 is 1 of 10
    assert outlier_ratio([values[:4], values[4:]], 2.0) == pytest.approx(0.1)


class TwoLayers(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(4, 4, bias=False), nn.Linear(4, 2, bias=False)

    def forward(self, x):
        return self.fc2(self.fc1(x))


def test_removals_on_a_hand_worked_network():
    net = TwoLayers()
    with torch.no_grad():
        net.fc1.weight.copy_(torch.eye(4))
        net.fc1.weight[0, 0] = 10.0  # one outlier in fc1
        net.fc2.weight.fill_(1.0)
    x = torch.eye(4)  # ‖X_j‖ = 1 for fc1's inputs; fc2's inputs are fc1(x) = rows of fc1.weight
    # fc1's metric: |W|: fifteen entries 0 or 1 and one 10, mean 13/16; above 2 x 13/16: just the 10 -> 1/16
    # fc2's inputs have norms (10, 1, 1, 1), metric |1| x norm: (10, 1, 1, 1) in both rows, mean 13/4; above
    # 6.5: the two 10s -> 2/8
    ratios = [1 / 16, 2 / 8]
    densities = owl_densities(ratios, [16, 8], 0.5, 0.1)  # scaled (0, 0.2), weighted mean 0.2 x 8/24
    assert densities == pytest.approx([0.5 - 0.2 / 3, 0.5 + 0.2 - 0.2 / 3])
    mask = Mask({"fc1.weight": torch.ones(4, 4, dtype=torch.bool), "fc2.weight": torch.ones(2, 4, dtype=torch.bool)})
    alive = {("fc1.weight",): 16, ("fc2.weight",): 8}
    removals = owl_removals(net, mask, alive, 0.5, CalibrationData(x), threshold=2.0, lam=0.1)
    kept = {"fc1.weight": 16 - int(16 * (1 - densities[0]) + 1e-9),
            "fc2.weight": 8 - int(8 * (1 - densities[1]) + 1e-9)}
    assert removals == {("fc1.weight",): 16 - kept["fc1.weight"], ("fc2.weight",): 8 - kept["fc2.weight"]}
    assert removals == {("fc1.weight",): 9, ("fc2.weight",): 2}  # floor(16 x 0.567), floor(8 x 0.367)
