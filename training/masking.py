"""Masked training as a training-loop hook: pruned weights stay exactly zero."""

from __future__ import annotations

import torch

from pruning.mask import Mask
from pruning.masked import MaskedTraining
from training.hooks import Hook, TrainState


def keeps_per_weight_state(optimizer: torch.optim.Optimizer) -> bool:
    """False for plain SGD without momentum: its step at a weight depends on that weight's
    gradient alone and leaves no state behind, so zeroing the weight afterwards is all a mask
    needs. Every other optimizer (momentum, Adam's moments) must not see pruned gradients."""
    if type(optimizer) is not torch.optim.SGD:
        return True
    return any(group.get("momentum", 0) != 0 for group in optimizer.param_groups)


class MaskHook(Hook):
    """Zero the pruned gradients before each optimizer step (where the optimizer would otherwise
    carry them in its state) and the pruned weights after it."""

    only_keeps_a_fixed_mask = True  # training/hooks.py: all it does is keep `self.mask`, so runs may stack

    def __init__(self, mask: Mask):
        self.mask = mask
        self.masked: MaskedTraining | None = None
        self.zero_grads = True

    def on_start(self, state: TrainState) -> None:
        self.masked = MaskedTraining(state.model, self.mask)
        self.masked.zero_weights()
        self.zero_grads = keeps_per_weight_state(state.optimizer)

    def before_optimizer_step(self, state: TrainState) -> None:
        if self.zero_grads:
            self.masked.zero_grads()

    def after_optimizer_step(self, state: TrainState) -> None:
        self.masked.zero_weights()
