"""The members' networks as one: parameters and buffers stacked along a new leading dim, and a
forward pass over all members at once.

The general form is `torch.func.functional_call` of one member's module under `torch.func.vmap`
(BatchNorm's running statistics are stacked buffers, updated in place per member). A LeNet (linear
layers and one activation) runs as batched matrix products instead: the same arithmetic with far
fewer dispatches, which is most of a tiny network's step.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

import torch
from torch.func import functional_call, stack_module_state, vmap

from models.lenet import LeNet


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
        self.bmm = type(self.template) is LeNet and not self.buffers and set(self.params) == _lenet_names(self.template)
        if not self.bmm:
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
        if self.bmm:
            return self._lenet(x)
        return self._vmapped(self.params, self.buffers, x)

    def _lenet(self, x: torch.Tensor) -> torch.Tensor:
        net: LeNet = self.template
        x = x.flatten(2)
        names = [f"fc_layers.{i}" for i in range(len(net.fc_layers))]
        for name in names:
            x = net.activation(self._linear(name, x))
        return self._linear("fc", x)

    def _linear(self, name: str, x: torch.Tensor) -> torch.Tensor:
        weight = self.params[f"{name}.weight"]
        bias = self.params.get(f"{name}.bias")
        if bias is None:
            return torch.bmm(x, weight.transpose(1, 2))
        return torch.baddbmm(bias.unsqueeze(1), x, weight.transpose(1, 2))

    @torch.no_grad()
    def write_member(self, index: int, model: torch.nn.Module) -> None:
        """Copy member `index`'s weights and buffers into its own module (at a boundary)."""
        for name, p in model.named_parameters():
            p.copy_(self.params[name][index])
        for name, b in model.named_buffers():
            if name in self.buffers:
                b.copy_(self.buffers[name][index])


def _lenet_names(net: LeNet) -> set[str]:
    layers = [f"fc_layers.{i}" for i in range(len(net.fc_layers))] + ["fc"]
    return {f"{layer}.{kind}" for layer in layers for kind in ("weight", "bias")}
