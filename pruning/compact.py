"""Physically remove the zero units of a pruned network, and count what is left.

A unit is a neuron (row of a Linear weight) or a filter (output channel of a Conv2d). When all of
a unit's incoming weights are zero it computes a constant, act(bias) (pooled, still a constant),
whatever the input, so it can be deleted together with the matching inputs of the next layer once
its constant contribution is folded into that layer's bias:
  next Linear:   b' = b + W[:, F_j] x_j       (F_j: the unit's features, several after a flatten)
  next Conv2d:   b' = b + c_j sum_{kh,kw} W[:, j]   (exact without padding; with padding, a unit is
                 deleted only when its constant is 0, since the border would see less of it)
The function of the masked network is unchanged; `compact` checks that on random inputs.

Supported are chains: every Conv2d/Linear feeds the next one through element-wise activations,
pooling and flattening (LeNet MLPs, LeNet-5). The output layer's units (classes) are never
removed. Counts are per example: parameters of the whole model, and multiply-accumulates (MACs)
of its conv and linear layers; FLOPs = 2 MACs.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import nn

from foundations.errors import UserError

LAYERS = (nn.Conv2d, nn.Linear)


@dataclass(frozen=True)
class Size:
    """What a network costs per example."""

    parameters: int
    macs: int

    @property
    def flops(self) -> int:
        return 2 * self.macs


@dataclass
class _Traced:
    name: str
    module: nn.Module
    input: torch.Tensor  # one example's input to the layer
    output_shape: torch.Size  # one example's output shape


def _trace(model: nn.Module, input_shape: tuple[int, ...]) -> list[_Traced]:
    """The Conv2d/Linear layers in call order, with one example's inputs and output shapes."""
    names = {module: name for name, module in model.named_modules() if isinstance(module, LAYERS)}
    traced: list[_Traced] = []

    def hook(module, args, output):
        traced.append(_Traced(names[module], module, args[0].detach()[0], output.shape[1:]))

    handles = [module.register_forward_hook(hook) for module in names]
    reference = next(model.parameters())
    try:
        with torch.no_grad():
            model(torch.zeros((1, *input_shape), dtype=reference.dtype, device=reference.device))
    finally:
        for handle in handles:
            handle.remove()
    if len({id(t.module) for t in traced}) != len(traced):
        raise UserError("a layer runs twice per forward pass: only plain chains of layers can be compacted")
    return traced


def size_of(model: nn.Module, input_shape: tuple[int, ...]) -> Size:
    """Parameters and per-example MACs of `model` as it is (zeros count: nothing is removed)."""
    macs = 0
    for layer in _trace(model, input_shape):
        positions = layer.output_shape[1:].numel() if isinstance(layer.module, nn.Conv2d) else \
            layer.output_shape[:-1].numel()
        macs += layer.module.weight.numel() * positions
    return Size(sum(p.numel() for p in model.parameters()), macs)


def _features_of_unit(source: _Traced, target: _Traced) -> int:
    """How many consecutive inputs of `target` each unit of `source` feeds (1, or H*W after a flatten)."""
    units = source.module.weight.shape[0]
    if isinstance(target.module, nn.Conv2d):
        if not isinstance(source.module, nn.Conv2d) or target.module.in_channels != units or target.module.groups != 1:
            raise UserError(f"{target.name} does not read {source.name}'s channels one to one: "
                            "only plain chains of layers can be compacted")
        return 1
    width = target.module.in_features
    if width % units:
        raise UserError(f"{target.name} reads {width} features, not a multiple of {source.name}'s {units} units: "
                        "only plain chains of layers can be compacted")
    return width // units


def _fold(source: _Traced, target: _Traced, unit: int, per_unit: int) -> torch.Tensor | None:
    """The constant that dead `unit` of `source` adds to each output of `target` (None: not foldable)."""
    weight = target.module.weight.detach()
    if isinstance(target.module, nn.Linear):
        features = slice(unit * per_unit, (unit + 1) * per_unit)
        return weight[:, features] @ target.input.reshape(-1)[features]
    value = target.input[unit]
    constant = value.reshape(-1)[0]
    if not torch.all(value == constant):
        return None
    if any(target.module.padding) and constant != 0:
        return None
    return weight[:, unit].sum(dim=(1, 2)) * constant


def _narrowed(module: nn.Module, rows: torch.Tensor, columns: torch.Tensor, bias: torch.Tensor | None) -> nn.Module:
    """A copy of a Conv2d/Linear keeping output units `rows` and inputs `columns` (unit indices)."""
    weight = module.weight.detach()[rows][:, columns]
    new = copy.deepcopy(module)
    new.weight = nn.Parameter(weight.clone())
    if isinstance(new, nn.Linear):
        new.in_features, new.out_features = weight.shape[1], weight.shape[0]
    else:
        new.in_channels, new.out_channels = weight.shape[1], weight.shape[0]
    if bias is not None:
        new.bias = nn.Parameter(bias[rows].clone())
    return new


def compact(model: nn.Module, input_shape: tuple[int, ...], check_inputs: int = 8) -> nn.Module:
    """A copy of `model` (pruned weights already zero) without its zero units (see the docstring)."""
    net = copy.deepcopy(model).eval()
    chain = _trace(net, input_shape)
    biases = [None if t.module.bias is None else t.module.bias.detach().clone() for t in chain]
    rows = [torch.arange(t.module.weight.shape[0], device=t.module.weight.device) for t in chain]
    columns = [torch.arange(t.module.weight.shape[1], device=t.module.weight.device) for t in chain]
    for k, (source, target) in enumerate(zip(chain, chain[1:])):
        per_unit = _features_of_unit(source, target)
        dead = (source.module.weight.detach().flatten(1) == 0).all(dim=1)
        keep = torch.ones_like(dead)
        for unit in dead.nonzero().flatten().tolist():
            shift = _fold(source, target, unit, per_unit)
            if shift is None or (biases[k + 1] is None and torch.any(shift != 0)):
                continue
            if biases[k + 1] is not None:
                biases[k + 1] += shift
            keep[unit] = False
        rows[k] = keep.nonzero().flatten()
        columns[k + 1] = keep.repeat_interleave(per_unit).nonzero().flatten()
    for k, traced in enumerate(chain):
        parent, _, leaf = traced.name.rpartition(".")
        owner = net.get_submodule(parent) if parent else net
        setattr(owner, leaf, _narrowed(traced.module, rows[k], columns[k], biases[k]))
    _check_same_function(model, net, input_shape, check_inputs)
    return net.train(model.training)


def _check_same_function(model: nn.Module, compacted: nn.Module, input_shape: tuple[int, ...], n: int) -> None:
    reference = next(model.parameters())
    x = torch.randn((n, *input_shape), generator=torch.Generator().manual_seed(0), dtype=reference.dtype)
    was_training = model.training
    model.eval()
    with torch.no_grad():
        expected, got = model(x.to(reference.device)), compacted(x.to(reference.device))
    model.train(was_training)
    scale = expected.abs().max().clamp_min(1.0)
    if not torch.allclose(expected, got, rtol=1e-4, atol=1e-5 * float(scale)):
        raise UserError("removing the zero units changed the network's outputs: its layers are not a plain chain "
                        "(a skip connection or a layer used twice?), so it cannot be compacted")
