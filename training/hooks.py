"""Hooks: the places where a branch reaches into the training loop.

A hook overrides any of these methods; the loop calls them in order for every hook it was given.
Masked training, for instance, zeroes pruned gradients in `before_optimizer_step` and pruned
weights in `after_optimizer_step`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from foundations.step import Step


@dataclass
class TrainState:
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    iteration: int
    iterations_per_epoch: int
    out_dir: Path

    @property
    def step(self) -> Step:
        return Step(self.iteration, self.iterations_per_epoch)


class Hook:
    def on_start(self, state: TrainState) -> None:
        """Before the first step (also after a resume)."""

    def before_optimizer_step(self, state: TrainState) -> None:
        """Gradients are computed; the optimizer has not stepped."""

    def after_optimizer_step(self, state: TrainState) -> None:
        """The optimizer has stepped; `state.iteration` is the iteration just finished."""

    def at_eval(self, state: TrainState, metrics: dict[str, float]) -> None:
        """After an evaluation on the test set."""

    def at_save(self, state: TrainState) -> None:
        """After the weights at a saved step were written."""

    def on_end(self, state: TrainState) -> None:
        """After the last step, before done.json."""
