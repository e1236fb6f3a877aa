"""The mask of a sparse-training branch as a training-loop hook that may change it.

Between changes it is the static mask's hook (training/masking.py), with the same zeroing
(pruning/masked.py's MaskedTraining): pruned gradients are zeroed before each optimizer step
(where the optimizer keeps per-weight state) and pruned weights after it, so they stay exactly
zero. After the optimizer step of an iteration where the method changes the mask (`changes_at`),
`change_mask` switches to `new_mask`'s next mask: the weights it revives (new connections) start
at zero with their optimizer state reset, the weights it removes are zeroed. A method that needs
the dense gradient (RigL) sets `needs_gradient`: it is copied only before the steps that end in a
change. A stack of runs (training/stacked/) calls the same `change_mask` on each member's slices.
The mask and the history of its per-layer counts are the hook's state in checkpoint.pt, so a
killed run resumes bitwise.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import torch

from platforms.storage import write_json
from pruning.mask import Mask
from pruning.masked import MaskedTraining
from training.hooks import Hook, TrainState
from training.masking import keeps_per_weight_state
from training.optimizers import reset_state

UPDATES = "updates.json"  # {"updates": [[from iteration, {layer: active count}], ...]}
_PER_STEP = ("changes_at", "new_mask", "loss_term", "before_optimizer_step", "after_optimizer_step")
_LOOP_SIDE = ("loss_term", "before_optimizer_step", "after_optimizer_step", "change_mask")


class DynamicMaskHook(Hook):
    key = "sparse_mask"
    needs_gradient = False

    @property
    def only_keeps_a_fixed_mask(self) -> bool:  # training/hooks.py: a run that may train stacked
        """True for this hook as it is (static-sparse: a mask no method changes); a method that
        changes the mask overrides `changes_at` (or a per-step method), and is not."""
        return all(getattr(type(self), name) is getattr(DynamicMaskHook, name) for name in _PER_STEP)

    @property
    def changes_mask_at_steps(self) -> bool:  # training/hooks.py: a stack may keep and change its mask
        """True where a method changes the mask and the loop's side is this class's own (the methods
        say only `changes_at` and `new_mask`): a stack then zeroes, and switches masks through
        `change_mask`, for each member."""
        return (not self.only_keeps_a_fixed_mask
                and all(getattr(type(self), name) is getattr(DynamicMaskHook, name) for name in _LOOP_SIDE))

    def __init__(self, mask: Mask, final_dir: Optional[Path] = None):
        self.final_dir = final_dir  # where on_end writes the final mask and updates.json
        self.mask: dict[str, torch.Tensor] = {name: tensor.clone() for name, tensor in mask.items()}
        self.history: list[list] = []  # [[iteration, {layer: active count}], ...]: each mask in use, from when
        self.gradients: Optional[dict[str, torch.Tensor]] = None
        self.weights: dict[str, torch.Tensor] = {}
        self.model: Optional[torch.nn.Module] = None
        self.masked: Optional[MaskedTraining] = None  # the static mask's zeroing, for the mask in use
        self.zero_grads = True

    # ---- what a method says -----------------------------------------------------------------
    def changes_at(self, iteration: int) -> bool:
        """Whether the mask changes after the optimizer step that made `iteration` steps."""
        return False

    def new_mask(self, state: TrainState) -> dict[str, torch.Tensor]:
        """The next mask (bool tensors on the weights' device), from the weights after the step,
        `self.mask` and, where `needs_gradient`, `self.gradients` (the step's dense gradient)."""
        return self.mask

    # ---- the loop's side --------------------------------------------------------------------
    def on_start(self, state: TrainState) -> None:
        self.model = state.model
        parameters = dict(state.model.named_parameters())
        self.weights = {name: parameters[name] for name in self.mask}
        self.mask = {name: tensor.to(self.weights[name].device) for name, tensor in self.mask.items()}
        self.masked = MaskedTraining(self.model, Mask(self.mask))
        self.masked.zero_weights()
        self.zero_grads = keeps_per_weight_state(state.optimizer)
        if not self.history:
            self.history = [[state.iteration, self.counts()]]

    def before_optimizer_step(self, state: TrainState) -> None:
        if self.needs_gradient and self.changes_at(state.iteration + 1):
            self.gradients = {name: weight.grad.detach().clone() for name, weight in self.weights.items()
                              if weight.grad is not None}
        if self.zero_grads:
            self.masked.zero_grads()

    def after_optimizer_step(self, state: TrainState) -> None:
        self.masked.zero_weights()
        if not self.changes_at(state.iteration):
            return
        revived = self.change_mask(state, self.weights, self.gradients)
        for name, where in revived.items():
            reset_state(state.optimizer, self.weights[name], where)
        self.masked = MaskedTraining(self.model, Mask(self.mask))
        self.masked.zero_weights()

    def change_mask(self, state: TrainState, weights: dict[str, torch.Tensor],
                    gradients: Optional[dict[str, torch.Tensor]] = None) -> dict[str, torch.Tensor]:
        """Switch to the method's next mask after the step that made `state.iteration` steps,
        judged on `weights` (name -> the weights after that step, zeroed by the current mask) and,
        where `needs_gradient`, `gradients` (that step's dense gradient). The revived weights are
        zeroed in `weights`; returns them (name -> bool), whose optimizer state the caller resets.
        The loop alone calls it with the module's weights; a stack with a member's slices."""
        bound, self.weights, self.gradients = self.weights, weights, gradients
        try:
            new = self.new_mask(state)
        finally:
            self.weights, self.gradients = bound, None
        revived = {}
        with torch.no_grad():
            for name, weight in weights.items():
                revived[name] = new[name] & ~self.mask[name]
                weight.masked_fill_(revived[name], 0.0)
        self.mask = new
        self.history.append([state.iteration, self.counts()])
        return revived

    def on_end(self, state: TrainState) -> None:
        if self.final_dir is not None and state.platform.is_primary:
            write_json({"updates": self.history}, Path(self.final_dir) / UPDATES)
            self.current().save(self.final_dir)

    def state_dict(self) -> dict:
        return {"mask": {name: tensor.detach().cpu() for name, tensor in self.mask.items()},
                "history": self.history}

    def load_state_dict(self, state: dict) -> None:
        self.mask = {name: tensor.clone() for name, tensor in state["mask"].items()}
        self.history = [list(entry) for entry in state["history"]]

    # ---- helpers ----------------------------------------------------------------------------
    def counts(self) -> dict[str, int]:
        """The active weights of each layer (one host sync; called only when the mask changes)."""
        return dict(zip(self.mask, torch.stack([t.count_nonzero().cpu() for t in self.mask.values()]).tolist()))

    def current(self) -> Mask:
        return Mask({name: tensor.detach().cpu() for name, tensor in self.mask.items()})
