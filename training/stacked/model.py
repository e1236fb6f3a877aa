"""The members' networks as one: parameters and buffers stacked along a new leading dim, and a
forward pass over all members at once.

The general form is `torch.func.functional_call` of one member's module under `torch.func.vmap`
(BatchNorm's running statistics are stacked buffers, updated in place per member). A model
without buffers may say how N of it run at once, `forward_stacked(params, x)` (params: name ->
(N, ...), x: (N, B, ...)): the LeNets and the complete layer do, as batched matrix products, the
same arithmetic with far fewer dispatches, which is most of a tiny network's step.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

import torch
from torch.func import functional_call, stack_module_state, vmap


class StackedModel:
    """`params` and `buffers`: name -> (N, ...) tensors (the parameters are leaves that require
    grad); `forward(x)` maps (N, B, ...) inputs to (N, B, outputs)."""

    def __init__(self, models: Sequence[torch.nn.Module]):
        self.template = models[0]
        params, buffers = stack_module_state(list(models))
        trainable = {name for name, p in self.template.named_parameters() if p.requires_grad}
        self.trainable = [name for name in params if name in trainable]  # what the optimizer steps
        self.params = {name: p.detach().requires_grad_(name in trainable) for name, p in params.items()}
        self.buffers = {name: b.detach().clone() for name, b in buffers.items()}
        self.direct = getattr(self.template, "forward_stacked", None) if not self.buffers else None
        if self.direct is None:
            def one(params, buffers, x):
                return functional_call(self.template, (params, buffers), (x,))
            self._vmapped = vmap(one, in_dims=(0, 0, 0), randomness="error")

    @contextlib.contextmanager
    def evaluating(self) -> Iterator[None]:
        """Evaluation mode (BatchNorm's running statistics, no updates) for the block, no grad."""
        was = self.template.training
        self.template.eval()
        try:
            with torch.no_grad():
                yield
        finally:
            self.template.train(was)

    def trainable_parameters(self) -> list[torch.Tensor]:
        return [self.params[name] for name in self.trainable]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.direct is not None:
            return self.direct(self.params, x)
        return self._vmapped(self.params, self.buffers, x)

    @torch.no_grad()
    def write_member(self, index: int, model: torch.nn.Module) -> None:
        """Copy member `index`'s weights and buffers into its own module (at a boundary)."""
        for name, p in model.named_parameters():
            p.copy_(self.params[name][index])
        for name, b in model.named_buffers():
            if name in self.buffers:
                b.copy_(self.buffers[name][index])
