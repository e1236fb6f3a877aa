"""Forward FLOPs per example (training/flops.py) of a tiny MLP, counted by hand."""

from __future__ import annotations

import pytest
import torch

from training.flops import forward_flops


class Tiny(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.hidden = torch.nn.Linear(4, 6)
        self.out = torch.nn.Linear(6, 3)

    def forward(self, x):
        return self.out(torch.sigmoid(self.hidden(x)))


def test_dense_and_pruned_flops_by_hand():
    model = Tiny()
    # 2 FLOPs per multiply-accumulate: 2 (4 x 6 + 6 x 3) = 84; biases and the sigmoid are not counted.
    assert forward_flops(model, torch.zeros(4)) == 84
    masks = {"hidden.weight": torch.ones(6, 4), "out.weight": torch.ones(3, 6)}
    masks["hidden.weight"][0, :2] = 0  # 2 of 24: 48 * 22/24 = 44
    masks["out.weight"][:, :3] = 0  # 9 of 18: 36 / 2 = 18
    assert forward_flops(model, torch.zeros(4), masks) == pytest.approx(44 + 18)
    assert model.training  # the mode is restored
