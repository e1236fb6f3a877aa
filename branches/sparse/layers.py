"""Which layers a sparse-training branch allocates, and its flags for them.

Every prunable weight is in the mask. The first layer and the output layer are treated as in the
RigL code: its ImageNet and CIFAR scripts keep the first layer dense and unmasked
(`first_layer_sparsity=0`, `prune_first_layer=False`) and give the output layer the allocated
density (`last_layer_sparsity=-1`, `prune_last_layer=True`); a layer given a density of its own
(its `custom_sparsity_map`) keeps it and is left out of the allocation's budget, so the target
density is that of the allocated layers; its MNIST script (an MLP) does the opposite: the first
layer allocated, the output layer dense (`layer3` at sparsity 0). Hence `auto`, the default of
`--first_layer` and `--output_layer`: for a network whose first prunable weight is a convolution,
the first layer dense and the output layer allocated; for an MLP, the first layer allocated and
the output layer dense. Either flag also takes `dense`, `allocated` or a density in (0, 1].
"""

from __future__ import annotations

from typing import Optional

import torch

from foundations.errors import UserError
from pruning.allocation import allocate, check_allocation, check_density

ALLOCATION_HELP = "uniform | erk | global: how the density is shared among the allocated layers"
FIRST_HELP = ("auto | dense | allocated | a density: the first layer (auto, the RigL code's: dense in a conv net, "
              "allocated in an MLP; a density of its own is left out of the allocation's budget)")
OUTPUT_HELP = ("auto | dense | allocated | a density: the output layer (auto, the RigL code's: allocated in a conv "
               "net, dense in an MLP)")
STRUCTURE_HELP = ("N:M, e.g. 2:4: every allocated layer keeps N of every M consecutive inputs of every row, "
                  "at every mask change (the density is then N/M; default: unstructured)")
AUTO = "auto"


def resolve(text: str, model: torch.nn.Module, first: bool) -> str:
    """`auto` as the RigL code treats this network's first (or output) layer; other values as given."""
    if str(text).strip().lower() != AUTO:
        return text
    state = model.state_dict()
    convolutional = state[list(model.prunable_layer_names)[0]].dim() > 2
    return ("dense" if convolutional else "allocated") if first else ("allocated" if convolutional else "dense")


def layer_density(text: str, flag: str) -> Optional[float]:
    """A --first_layer / --output_layer value (not `auto`) as a fixed density, or None for `allocated`."""
    text = str(text).strip().lower()
    if text == "allocated":
        return None
    if text == "dense":
        return 1.0
    try:
        value = float(text)
    except ValueError:
        raise UserError(f"--{flag}={text!r} is none of dense, allocated or a density in (0, 1]") from None
    return check_density(value, flag)


def canonical_layer(text: str, flag: str) -> str:
    """The value as stored and hashed: `auto`, `dense`, `allocated`, or the density as a number."""
    if str(text).strip().lower() == AUTO:
        return AUTO
    value = layer_density(text, flag)
    if value is None:
        return "allocated"
    return "dense" if value == 1.0 else repr(value)


def fixed_densities(model: torch.nn.Module, first_layer: str, output_layer: str) -> dict[str, float]:
    """{weight name: density} of the layers given a density of their own."""
    names = list(model.prunable_layer_names)
    output = f"{model.output_module}.weight"
    fixed = {}
    for name, text, flag in ((names[0], resolve(first_layer, model, True), "first_layer"),
                             (output, resolve(output_layer, model, False), "output_layer")):
        value = layer_density(text, flag)
        if value is not None and name in names:
            fixed[name] = value
    if len(fixed) == len(names):
        raise UserError("every prunable layer has a density of its own: nothing is left to allocate")
    return fixed


def layer_counts(model: torch.nn.Module, allocation: str, density: float, first_layer: str,
                 output_layer: str) -> dict[str, int]:
    """Per-layer counts of active weights for `model`'s prunable weights."""
    check_allocation(allocation)
    state = model.state_dict()
    weights = {name: state[name] for name in model.prunable_layer_names}
    return allocate(allocation, weights, density, fixed_densities(model, first_layer, output_layer))
