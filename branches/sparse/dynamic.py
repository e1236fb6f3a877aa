"""What SET and RigL share: the `--update_*` flags and the drop-and-grow hook.

Every `--update_every` steps after `--update_begin` (excluded) while at most `--update_end` of
training is done, each layer drops the fraction f(t) of its active weights with the smallest
magnitude, f decaying from `--drop_fraction` by a cosine to 0 at the end of the updates
(`--drop_anneal=constant` keeps it), and grows as many by the method's grow score (update.py).
The per-layer counts never change, so the density stays that of the initial random mask. With
--structure=N:M an N:M layer regrows within each group of M what the drop took from it, so every
group keeps N (update.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch

from branches.sparse.common import Grouping
from branches.sparse.hook import DynamicMaskHook
from branches.sparse.schedule import drop_fraction, is_update_step
from branches.sparse.update import drop_and_grow
from foundations.errors import UserError
from foundations.hparams import Hparams, hparam
from pruning.mask import Mask
from runs.branch import Branch
from training.hooks import TrainState

ANNEALS = ("cosine", "constant")


@dataclass
class UpdateHparams(Hparams):
    _name = "Mask Update Hyperparameters"
    _description = "When the mask changes and how much of it (the RigL code's defaults)."

    update_every: str = hparam("100it", "steps between mask updates (the RigL code's maskupdate_frequency: 100)")
    update_begin: str = hparam("0it", "updates start after this step")
    update_end: float = hparam(0.75, "updates stop once this fraction of training is done (the RigL paper: 0.75)")
    drop_fraction: float = hparam(0.3, "fraction of each layer's active weights dropped at the first update")
    drop_anneal: str = hparam("cosine", "cosine | constant: how the drop fraction decays over the updates",
                              choices=ANNEALS)

    def validate(self) -> None:
        if not 0 < self.drop_fraction < 1:
            raise UserError(f"--drop_fraction={self.drop_fraction} is outside (0, 1): give a fraction such as 0.3")
        if not 0 < self.update_end <= 1:
            raise UserError(f"--update_end={self.update_end} is outside (0, 1]: give a fraction of training, "
                            f"such as 0.75")


@dataclass(frozen=True)
class UpdateSteps:
    begin: int
    end: int
    every: int

    def __contains__(self, iteration: int) -> bool:
        return is_update_step(iteration, self.begin, self.end, self.every)

    def fraction(self, iteration: int, h: UpdateHparams) -> float:
        return drop_fraction(iteration, self.begin, self.end, h.drop_fraction, h.drop_anneal)


def update_steps(branch: Branch, h: UpdateHparams) -> UpdateSteps:
    """The update schedule in iterations, checked against the trunk's training."""
    trunk = branch.trunk
    every = trunk.step(h.update_every, "update_every").iteration
    if every <= 0:
        raise UserError(f"--update_every={h.update_every} must be at least 1it")
    begin = trunk.step(h.update_begin, "update_begin").iteration
    end = math.floor(h.update_end * trunk.end_step.iteration)
    if end < begin + every:
        raise UserError(f"no mask update falls between --update_begin={h.update_begin} and --update_end="
                        f"{h.update_end} of training ({trunk.end_step.iteration} steps) every {h.update_every}")
    return UpdateSteps(begin, end, every)


class DropAndGrow(DynamicMaskHook):
    """The drop-and-grow hook; `grow_scores(name, iteration)` is the method's."""

    def __init__(self, mask: Mask, final_dir: Path, steps: UpdateSteps, h: UpdateHparams,
                 groups: Optional[Grouping] = None):
        super().__init__(mask, final_dir)
        self.steps, self.h = steps, h
        self.groups = groups  # the N:M layers, or None

    def changes_at(self, iteration: int) -> bool:
        return iteration in self.steps

    def grow_scores(self, name: str, layer: int, iteration: int) -> torch.Tensor:
        raise NotImplementedError

    def new_mask(self, state: TrainState) -> dict[str, torch.Tensor]:
        """Each layer's drop and grow; a layer with no inactive weight (a dense first or output
        layer) has nothing to regrow into and stays as it is."""
        fraction = self.steps.fraction(state.iteration, self.h)
        dense = {name for name, count in self.history[-1][1].items() if count == self.mask[name].numel()}
        return {name: mask if name in dense else
                drop_and_grow(self.weights[name], mask, fraction, self.grow_scores(name, layer, state.iteration),
                              self.group_size(name)).mask
                for layer, (name, mask) in enumerate(self.mask.items())}

    def group_size(self, name: str) -> Optional[int]:
        return self.groups.m if self.groups is not None and name in self.groups.names else None
