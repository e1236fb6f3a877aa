"""Optimizers and the learning-rate schedule, both built from TrainingHparams."""

from __future__ import annotations

import bisect
import math

import torch

from foundations.bundles import TrainingHparams
from foundations.step import Step


def build_optimizer(h: TrainingHparams, model: torch.nn.Module) -> torch.optim.Optimizer:
    """SGD/Adam/AdamW over the trainable parameters, with the foreach kernels."""
    params = [p for p in model.parameters() if p.requires_grad]
    decay = h.weight_decay or 0.0
    if h.optimizer_name == "sgd":
        return torch.optim.SGD(params, lr=h.lr, momentum=h.momentum, nesterov=h.nesterov,
                               weight_decay=decay, foreach=True)
    if h.optimizer_name == "adam":
        return torch.optim.Adam(params, lr=h.lr, weight_decay=decay, foreach=True)
    if h.optimizer_name == "adamw":
        return torch.optim.AdamW(params, lr=h.lr, weight_decay=decay, foreach=True)
    raise ValueError(f"unknown optimizer {h.optimizer_name}")  # unreachable: the hparam has choices


class LRSchedule:
    """The learning rate as a pure function of the iteration: linear warmup from 0, then either a
    factor of gamma at each milestone or a cosine decay from --lr to --final_lr over the rest of
    training. Being a function of the iteration alone, it needs no state to resume."""

    def __init__(self, h: TrainingHparams, iterations_per_epoch: int):
        self.base_lr = h.lr
        self.gamma = h.gamma if h.gamma is not None else 1.0
        self.milestones = sorted(s.iteration for s in Step.parse_list(h.milestone_steps, iterations_per_epoch,
                                                                      "milestone_steps"))
        self.warmup = Step.parse(h.warmup_steps, iterations_per_epoch).iteration if h.warmup_steps else 0
        self.cosine = h.lr_schedule == "cosine"
        self.final_lr = h.final_lr or 0.0
        self.end = Step.parse(h.training_steps, iterations_per_epoch).iteration

    def __call__(self, iteration: int) -> float:
        if self.cosine:
            span = max(self.end - self.warmup, 1)
            done = min(max(iteration - self.warmup, 0), span) / span
            lr = self.final_lr + (self.base_lr - self.final_lr) * 0.5 * (1.0 + math.cos(math.pi * done))
        else:
            lr = self.base_lr * self.gamma ** bisect.bisect_right(self.milestones, iteration)
        if iteration < self.warmup:
            lr *= iteration / self.warmup
        return lr

    def apply(self, optimizer: torch.optim.Optimizer, iteration: int) -> None:
        lr = self(iteration)
        for group in optimizer.param_groups:
            group["lr"] = lr


@torch.no_grad()
def reset_state(optimizer: torch.optim.Optimizer, parameter: torch.Tensor, where: torch.Tensor) -> None:
    """Zero the optimizer's per-weight state of `parameter` (SGD's momentum buffer, Adam's moments)
    where `where` is True: a weight that starts anew (a regrown connection) carries no history.
    Per-parameter scalars (Adam's step count) are left as they are."""
    for value in optimizer.state.get(parameter, {}).values():
        if isinstance(value, torch.Tensor) and value.shape == parameter.shape:
            value.masked_fill_(where, 0)
