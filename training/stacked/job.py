"""One `training.loop.train` call, held as data, and whether it can train stacked with others.

Runs stack when one step of each is the same computation on different numbers: the same
architecture (parameter and buffer names and shapes), the same batch shapes in the same order
(dataset size, batch size, iterations per epoch), the same span of training and the same
boundaries (evaluation, saved steps, checkpoints), the same loss, and an optimizer of the same
kind. What may differ per member: the initialization, the data order, the augmentation, the mask,
the learning rate and its schedule, the momentum and the weight decay.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

import torch

from foundations import paths
from foundations.bundles import TrainingHparams
from foundations.step import Step
from platforms.storage import load_torch
from training.hooks import Hook, overrides
from training.loop import Boundaries, train

STACKABLE_OPTIMIZERS = ("sgd", "adam")


@dataclass
class TrainJob:
    """The arguments of one `training.loop.train(...)` call."""

    model: torch.nn.Module
    h: TrainingHparams
    train_loader: Any
    test_loader: Any
    out_dir: Path
    platform: Any
    data_order_seed: int
    start: Optional[Step] = None
    end: Optional[Step] = None
    hooks: Sequence[Hook] = field(default_factory=tuple)

    @classmethod
    def from_call(cls, model, h, train_loader, test_loader, out_dir, *, platform, data_order_seed,
                  start=None, end=None, hooks=()) -> "TrainJob":
        """The job of a call with `train`'s own signature."""
        return cls(model, h, train_loader, test_loader, Path(out_dir), platform, data_order_seed, start, end,
                   tuple(hooks))

    @property
    def ipe(self) -> int:
        return len(self.train_loader)

    @property
    def start_iteration(self) -> int:
        return (self.start or Step.zero(self.ipe)).iteration

    @property
    def end_iteration(self) -> int:
        return (self.end or Step.parse(self.h.training_steps, self.ipe, "training_steps")).iteration

    def call_alone(self) -> dict:
        """Run this job through the loop (`training.loop.train`), one run on its own. Called
        where no dispatch handler is set (the stack's coordinator), it trains here."""
        return train(self.model, self.h, self.train_loader, self.test_loader, self.out_dir, platform=self.platform,
                     data_order_seed=self.data_order_seed, start=self.start, end=self.end, hooks=self.hooks)


def resumed_iteration(out_dir: Path) -> Optional[int]:
    """The iteration of the run's checkpoint.pt (None: a fresh start)."""
    path = Path(out_dir) / paths.CHECKPOINT
    if not path.exists():
        return None
    try:
        return int(load_torch(path, map_location="cpu")["iteration"])
    except Exception:  # the loop itself says what is wrong with it
        return -1


def keeps_a_fixed_mask(hook: Hook) -> bool:
    """Whether the hook declares that all its per-step work is keeping a fixed mask (its `.mask`:
    name -> bool tensor), training/hooks.py's `only_keeps_a_fixed_mask`: MaskHook, and the
    sparse-training branches' mask hook where no method changes the mask (static-sparse). The
    stack does that work; such a hook's other methods and checkpointed state run per member."""
    return hook.only_keeps_a_fixed_mask


STACKED_FORMS = {"before_optimizer_step": "before_stacked_optimizer_step",
                 "after_optimizer_step": "after_stacked_optimizer_step"}


def _defined_in(cls: type, name: str) -> type:
    return next(klass for klass in cls.__mro__ if name in vars(klass))


def steps_each_member(hook: Hook) -> bool:
    """Whether every per-step method the hook has is `before_optimizer_step` or
    `after_optimizer_step` with its stacked form defined in the same class (training/hooks.py),
    which the stack calls per member on that member's views of the stacked weights (and
    gradients) around each stacked optimizer step: the per-step pruning rules, the orderedness
    tracker (branches/orderedness/step_rules.py), SpaM's prior (branches/spam/prior_training.py).
    A subclass that redefines a per-step method without its stacked form does not qualify."""
    if overrides(hook, "loss_term") or keeps_a_mask(hook):
        return False
    used = [method for method in STACKED_FORMS if overrides(hook, method)]
    kind = type(hook)
    return bool(used) and all(overrides(hook, STACKED_FORMS[method])
                              and _defined_in(kind, method) is _defined_in(kind, STACKED_FORMS[method])
                              for method in used)


PER_STEP_METHODS = ("loss_term", "before_optimizer_step", "after_optimizer_step")


def works_only_at_boundaries(hook: Hook) -> bool:
    """Whether the hook does nothing per step (it times, evaluates, logs or stops a run at its
    boundaries: the chaos-causality benchmark stop). Its methods run per member, as alone."""
    return not any(overrides(hook, method) for method in PER_STEP_METHODS)


def changes_its_mask(hook: Hook) -> bool:
    """Whether the hook keeps a mask that it changes after some steps (training/hooks.py's
    `changes_mask_at_steps`: GMP, SET, RigL); the stack keeps it and calls its `change_mask`."""
    return hook.changes_mask_at_steps


def keeps_a_mask(hook: Hook) -> bool:
    """Whether the stack keeps the hook's mask (fixed, or changed at some steps)."""
    return keeps_a_fixed_mask(hook) or changes_its_mask(hook)


def stacks(hook: Hook) -> bool:
    """Whether a run with this hook may train stacked."""
    return keeps_a_mask(hook) or steps_each_member(hook) or works_only_at_boundaries(hook)


def _shapes(tensors) -> tuple:
    return tuple((name, tuple(t.shape), str(t.dtype)) for name, t in tensors)


def stack_key(job: TrainJob) -> tuple[Optional[tuple], str]:
    """(the key that stackable jobs share, "") or (None, why this job trains alone)."""
    h, platform, model = job.h, job.platform, job.model
    if platform.world.is_distributed:
        return None, "torchrun runs are data-parallel already"
    if h.optimizer_name not in STACKABLE_OPTIMIZERS:
        return None, f"--optimizer_name={h.optimizer_name} has no stacked form (sgd and adam do)"
    if h.precision != "fp32" and h.precision is not None:
        return None, f"--precision={h.precision} trains alone (stacking is fp32)"
    if not all(stacks(hook) for hook in job.hooks):
        names = sorted({type(hook).__name__ for hook in job.hooks if not stacks(hook)})
        return None, (f"hook(s) {', '.join(names)} have no stacked form (a mask, fixed or changed at steps, "
                      f"after_stacked_optimizer_step and work only at boundaries have)")
    if job.train_loader.task not in ("classification", "regression"):
        return None, f"{job.train_loader.task} has no stacked form"
    if not hasattr(job.train_loader, "batches") or not hasattr(job.train_loader, "num_examples"):
        return None, f"{type(job.train_loader).__name__} cannot be stacked"
    random_modules = [type(m).__name__ for m in model.modules() if isinstance(m, torch.nn.modules.dropout._DropoutNd)
                      and m.p > 0]
    if random_modules:
        return None, f"{random_modules[0]} draws random numbers per step, which a stack would not reproduce"
    resumed = resumed_iteration(job.out_dir)
    if resumed == -1:
        return None, "its checkpoint.pt cannot be read (the loop says why)"
    ipe = job.ipe
    bounds = Boundaries(h, ipe, job.start_iteration, job.end_iteration, platform.checkpoint_every)
    loader = job.train_loader
    key = (
        type(model), _shapes(model.named_parameters()), _shapes(model.named_buffers()),
        str(platform.device), platform.num_threads, h.optimizer_name, bool(h.nesterov), h.loss,
        getattr(h, "label_smoothing", 0.0),
        loader.task, loader.num_classes, loader.num_examples, loader.batch_size, ipe,
        getattr(job.test_loader, "num_examples", None), getattr(job.test_loader, "batch_size", None),
        bounds.start, bounds.end, bounds.eval_every, bounds.checkpoint_every, tuple(sorted(bounds.saves)),
        resumed,
    )
    return key, ""
