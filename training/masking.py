"""Masked training as a training-loop hook: pruned weights stay exactly zero."""

from __future__ import annotations

from pruning.mask import Mask
from pruning.masked import MaskedTraining
from training.hooks import Hook, TrainState


class MaskHook(Hook):
    """Zero the pruned gradients before each optimizer step and the pruned weights after it."""

    def __init__(self, mask: Mask):
        self.mask = mask
        self.masked: MaskedTraining | None = None

    def on_start(self, state: TrainState) -> None:
        self.masked = MaskedTraining(state.model, self.mask)
        self.masked.zero_weights()

    def before_optimizer_step(self, state: TrainState) -> None:
        self.masked.zero_grads()

    def after_optimizer_step(self, state: TrainState) -> None:
        self.masked.zero_weights()
