"""Find the Linear/Conv2d layers whose curvature has a closed form, and capture what it needs.

For such a layer, the gradient of any scalar of the output f with respect to its weight is, per
example, sum_p g_p a_p^T: g_p the gradient at the layer's output at position p, a_p the layer's
input (a conv patch) at p. So one forward pass that records every layer input, plus a batched
backward pass to the layer outputs, gives every per-example weight gradient we need without ever
materialising (examples x parameters) Jacobians.

Layout convention (shared with KFAC): inputs become (batch, positions, in_features) with
  Linear: positions = every leading dimension between batch and features (1 for a plain MLP);
  Conv2d: positions = output pixels, in_features = in_channels * kh * kw, in the order of
          F.unfold, which is the order of weight.flatten(1).
Layer outputs become (batch, positions, out_features) the same way.
"""

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

import torch
import torch.nn.functional as F
from torch import nn

from foundations.errors import UserError


@dataclass(frozen=True)
class LayerRef:
    """A Linear or Conv2d layer, named by module path and by its parameters' state_dict names."""

    module_name: str
    weight: str
    bias: str | None


def _qualified(module_name: str, leaf: str) -> str:
    return f"{module_name}.{leaf}" if module_name else leaf


def _has_closed_form(module: nn.Module) -> bool:
    if isinstance(module, nn.Linear):
        return True
    if isinstance(module, nn.Conv2d):
        return (
            module.groups == 1
            and module.padding_mode == "zeros"
            and not isinstance(module.padding, str)
        )
    return False


def closed_form_layers(model: nn.Module, param_names: set[str]) -> list[LayerRef]:
    """Linear and Conv2d (groups=1, zero padding given as numbers) layers among param_names."""
    layers = []
    for module_name, module in model.named_modules():
        if not _has_closed_form(module):
            continue
        weight = _qualified(module_name, "weight")
        if weight not in param_names:
            continue
        bias = _qualified(module_name, "bias") if module.bias is not None else None
        layers.append(LayerRef(module_name, weight, bias if bias in param_names else None))
    return layers


def layer_inputs(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The layer's input as (batch, positions, in_features) (see the module docstring)."""
    if isinstance(module, nn.Conv2d):
        patches = F.unfold(
            x, module.kernel_size, dilation=module.dilation, padding=module.padding,
            stride=module.stride,
        )
        return patches.transpose(1, 2)
    return x.reshape(x.shape[0], -1, x.shape[-1])


def output_positions(grad: torch.Tensor, module: nn.Module) -> torch.Tensor:
    """A batched gradient at the layer output, (columns, batch, ...), as (columns, batch, positions, out)."""
    if isinstance(module, nn.Conv2d):
        return grad.flatten(3).transpose(2, 3)
    return grad.reshape(grad.shape[0], grad.shape[1], -1, grad.shape[-1])


class Capture:
    """Inputs (detached, in the layout above) and outputs (in the autograd graph) of one forward."""

    def __init__(self) -> None:
        self.inputs: dict[str, torch.Tensor] = {}
        self.outputs: dict[str, torch.Tensor] = {}


@contextmanager
def capturing(model: nn.Module, layers: list[LayerRef]) -> Iterator[Capture]:
    """Record each layer's input and make its output a node we can differentiate to.

    The hook returns a clone of the output, so an in-place activation after the layer cannot
    overwrite the recorded node. When nothing upstream needs gradients (the first layer, with
    the parameters detached), the output becomes a fresh leaf; gradients still flow to it.
    """
    capture = Capture()
    modules = dict(model.named_modules())
    handles = []

    def make_hook(name: str):
        def hook(module: nn.Module, args: tuple, output: torch.Tensor) -> torch.Tensor:
            if name in capture.outputs:
                raise UserError(
                    f"layer {name!r} runs more than once per forward pass; the Laplace curvature "
                    "needs each Linear/Conv2d layer to be called once"
                )
            capture.inputs[name] = layer_inputs(module, args[0].detach())
            node = output if output.requires_grad else output.detach().requires_grad_()
            capture.outputs[name] = node
            return node.clone()

        return hook

    try:
        for layer in layers:
            module = modules[layer.module_name]
            handles.append(module.register_forward_hook(make_hook(layer.module_name)))
        yield capture
    finally:
        for handle in handles:
            handle.remove()
