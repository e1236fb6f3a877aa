"""Training with a mask: pruned weights stay exactly zero and never move optimizer state.

Weights stay dense tensors. The training loop calls `zero_grads()` after backward and before the
optimizer step, and `zero_weights()` after it. With the pruned weights at zero and their
gradients zeroed, SGD momentum and weight decay (wd * 0 = 0) and Adam/AdamW moments stay zero for
them; zeroing the weights after the step makes "exactly zero" hold whatever the optimizer does.
Both are one `torch._foreach_mul_` over the layers that have pruned weights, with multipliers
kept on the weights' device in their dtype and memory format, so there is no host sync.
"""

from __future__ import annotations

import torch
from torch import nn

from pruning.mask import Mask


class MaskedTraining:
    """Keeps `model`'s pruned weights at zero. Build it after the model is on its final device and
    dtype; pass the bare module (not a DDP wrapper: parameter names must match the mask)."""

    def __init__(self, model: nn.Module, mask: Mask):
        parameters = dict(model.named_parameters())
        missing = [name for name in mask if name not in parameters]
        if missing:
            raise ValueError(f"mask names {missing} are not parameters of {type(model).__name__}")
        wrong = [name for name in mask if mask[name].shape != parameters[name].shape]
        if wrong:
            raise ValueError(f"mask shapes differ from the weights' for {wrong}: the mask is of another model")
        names = [name for name, c in mask.layer_counts().items() if c["unpruned"] < c["total"]]
        self.weights: list[torch.Tensor] = [parameters[name] for name in names]
        self.multipliers: list[torch.Tensor] = [
            torch.empty_like(weight).copy_(mask[name]) for name, weight in zip(names, self.weights)]

    @torch.no_grad()
    def zero_weights(self) -> None:
        """Set every pruned weight to 0.0 (call after each optimizer step)."""
        if self.weights:
            torch._foreach_mul_(self.weights, self.multipliers)

    def apply_to_weights(self) -> None:
        """Apply the mask to the weights: call before the first step (and after loading weights)."""
        self.zero_weights()

    @torch.no_grad()
    def zero_grads(self) -> None:
        """Set the gradient of every pruned weight to 0.0 (call before each optimizer step)."""
        pairs = [(w.grad, m) for w, m in zip(self.weights, self.multipliers) if w.grad is not None]
        if pairs:
            grads, multipliers = zip(*pairs)
            torch._foreach_mul_(list(grads), list(multipliers))
