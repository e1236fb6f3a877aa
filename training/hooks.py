"""Hooks: the only places where a branch reaches into the training loop.

A hook overrides any of the methods below; the loop calls them in order for every hook it was
given, and a method a hook does not override costs nothing. A hook may
  - keep pruned weights at zero (MaskHook: `before_optimizer_step` / `after_optimizer_step`),
  - add a term to the loss (`loss_term`, e.g. a learned prior's penalty),
  - rewrite weights or masks after each step (per-step pruning rules, online pruning events),
  - record what the loop sees (weight trajectories), write its own metric series through
    `state.log`, add values to an evaluation (`at_eval`), or end training early
    (`state.request_stop`).
A hook with state that must survive a kill (a learned prior, a frozen threshold, a ring buffer)
returns it from `state_dict()`; it is saved in checkpoint.pt under the hook's `key` and handed
back through `load_state_dict()` on resume, before `on_start`.

A hook also declares what another trainer may do in its place: `only_keeps_a_fixed_mask` (False
unless a hook says otherwise) lets stacked training (training/stacked/) do the hook's per-step
work itself for a stack of runs, and a hook whose only per-step work is `after_optimizer_step`
may also implement `after_stacked_optimizer_step` (a per-step pruning rule), and one whose
`before_optimizer_step` changes the gradients `before_stacked_optimizer_step` (a learned prior's
penalty): the stack then calls them per member with the member's slices of the stacked
parameters and gradients. A stacked form counts only beside the per-step method it stands for, in
the same class (a subclass that changes the method without it trains alone). A hook whose mask changes at
known steps says `changes_mask_at_steps` (below): the stack keeps it and calls `change_mask`
with the member's slices. A hook with no per-step method
(one that times, evaluates or stops a run at its boundaries) stacks as it is: the stack runs its
methods per member, with the member's weights in `state.model` (its optimizer's state there is
current only at checkpoints).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import torch

from foundations.step import Step


@dataclass
class TrainState:
    """What hooks see. `iteration` counts the optimizer steps taken so far: in
    `before_optimizer_step` it is i for the i-th step (0-based), in `after_optimizer_step` i + 1."""

    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    iteration: int
    iterations_per_epoch: int
    out_dir: Path
    start_iteration: int = 0
    end_iteration: int = 0
    log: Any = None  # training.metrics.MetricLog
    platform: Any = None
    train_loader: Any = None
    test_loader: Any = None
    stop_reason: Optional[str] = field(default=None)

    @property
    def step(self) -> Step:
        return Step(self.iteration, self.iterations_per_epoch)

    @property
    def at_epoch_end(self) -> bool:
        """True in `after_optimizer_step` when that step finished an epoch."""
        return self.iteration % self.iterations_per_epoch == 0

    def request_stop(self, reason: str) -> None:
        """End training at the next evaluation point (its weights become the final ones)."""
        self.stop_reason = reason


class Hook:
    key: Optional[str] = None  # checkpoint key; defaults to the class name
    # True where the hook's per-step methods (`loss_term`, `before_optimizer_step`,
    # `after_optimizer_step`) do no more than keep the weights outside its `mask` (parameter name
    # -> bool tensor, fixed once `on_start` has run) at zero, and their gradients out of the
    # optimizer's state. Stacked training then does that work itself (a stack's step is not the
    # hook's) and runs the hook's other methods per member; a run with any hook that does not say
    # so trains alone. A subclass that changes the mask or does more per step must say False.
    only_keeps_a_fixed_mask: bool = False
    # True where the per-step work is keeping a `mask` (as above) that the hook itself changes
    # after some optimizer steps: `changes_at(iteration)` says after which, `needs_gradient`
    # whether the change reads that step's dense gradient, and `change_mask(state, weights,
    # gradients)` switches the mask (zeroing the revived weights in `weights`) and returns the
    # revived positions (name -> bool), whose optimizer state the caller zeroes. The sparse-training
    # branches' hook (branches/sparse/hook.py); a stack then keeps and changes each member's mask.
    changes_mask_at_steps: bool = False

    @property
    def checkpoint_key(self) -> str:
        return self.key or type(self).__name__

    def on_start(self, state: TrainState) -> None:
        """Before the first step (also after a resume, once the hook's state is restored)."""

    def loss_term(self, state: TrainState) -> Optional[torch.Tensor]:
        """A scalar added to this step's mean training loss (None: nothing)."""
        return None

    def before_optimizer_step(self, state: TrainState) -> None:
        """Gradients are computed; the optimizer has not stepped."""

    def after_optimizer_step(self, state: TrainState) -> None:
        """The optimizer has stepped; `state.iteration` counts this step."""

    def before_stacked_optimizer_step(self, state: TrainState, parameters: dict[str, torch.Tensor],
                                      gradients: dict[str, torch.Tensor]) -> None:
        """`before_optimizer_step` for one member of a stack (training/stacked/): `parameters` and
        `gradients` (name -> tensor) are that member's weights and this step's gradients (after
        the masks), views into the stacked ones (an in-place change of a gradient reaches the
        step). Not implemented (the default), a hook with a `before_optimizer_step` trains alone."""
        raise NotImplementedError(f"{type(self).__name__} has no stacked form")

    def after_stacked_optimizer_step(self, state: TrainState, parameters: dict[str, torch.Tensor]) -> None:
        """`after_optimizer_step` for one member of a stack (training/stacked/): `parameters` (name ->
        tensor) are that member's weights (and buffers), views into the stacked ones (an in-place
        rewrite reaches the stack), while `state.model` holds them only at boundaries. Not
        implemented (the default), a hook with an `after_optimizer_step` trains alone."""
        raise NotImplementedError(f"{type(self).__name__} has no stacked form")

    def at_eval(self, state: TrainState, metrics: dict[str, float]) -> None:
        """After an evaluation; entries added to `metrics` are logged with it."""

    def at_save(self, state: TrainState) -> None:
        """After the weights at a saved step were written."""

    def on_end(self, state: TrainState) -> None:
        """After the last step, before done.json."""

    def state_dict(self) -> Optional[dict]:
        """What must survive a kill (tensors and plain values), or None."""
        return None

    def load_state_dict(self, state: dict) -> None:
        """Restore what `state_dict` returned (called on resume, before `on_start`)."""


def overrides(hook: Hook, method: str) -> bool:
    """Whether `hook` implements `method` itself (the loop skips the rest)."""
    return getattr(type(hook), method) is not getattr(Hook, method)
