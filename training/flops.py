"""Forward FLOPs per example of a (pruned) network.

The dense count is PyTorch's own (`torch.utils.flop_counter.FlopCounterMode`, 2 FLOPs per
multiply-accumulate of every matmul and convolution; element-wise ops such as bias adds and
activations are not counted) on one example. A layer whose weight is pruned to density d is
counted as d times its dense FLOPs: what a sparse kernel that skips the zeros would do. FLOPs
outside the weighted layers are kept as they are.
"""

from __future__ import annotations

from typing import Iterable, Mapping, Optional

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode


def forward_flops(model: torch.nn.Module, example: torch.Tensor,
                  masks: Optional[Mapping[str, torch.Tensor]] = None) -> float:
    """FLOPs of one forward pass of `example` (one input, without its batch dimension), with
    each weight named in `masks` (``"<module>.weight"`` -> 0/1 tensor) counted at its density."""
    return dense_and_masked_flops(model, example, masks)[1]


def dense_and_masked_flops(model: torch.nn.Module, example: torch.Tensor,
                           masks: Optional[Mapping[str, torch.Tensor]] = None) -> tuple[float, float]:
    """(dense FLOPs, FLOPs under `masks`) of one forward pass of `example`, from one counted pass."""
    masks = masks or {}
    dense, layers = layer_flops(model, example, masks)
    densities = {name: float(mask.count_nonzero()) / mask.numel() if mask.numel() else 1.0
                 for name, mask in masks.items()}
    return dense, at_densities(dense, layers, densities)


def layer_flops(model: torch.nn.Module, example: torch.Tensor, weights: Iterable[str]
                ) -> tuple[float, dict[str, float]]:
    """(dense FLOPs of one forward pass of `example`, {weight: FLOPs of its module}), counted once:
    any density of those weights is then `at_densities` without another pass."""
    was_training = model.training
    model.eval()
    # The math backend of scaled_dot_product_attention is made of matmuls the counter sees; the
    # fused CPU kernel is not counted at all (its two products are 4 * tokens^2 * width FLOPs a block).
    with torch.no_grad(), sdpa_kernel([SDPBackend.MATH]), FlopCounterMode(display=False) as counter:
        model(example.unsqueeze(0))
    model.train(was_training)
    counts = counter.get_flop_counts()
    root = type(model).__name__
    layers = {}
    for name in weights:
        module = name.rsplit(".", 1)[0] if "." in name else ""
        layers[name] = float(sum(counts.get(f"{root}.{module}" if module else root, {}).values()))
    return float(counter.get_total_flops()), layers


def at_densities(dense: float, layers: Mapping[str, float], densities: Mapping[str, float]) -> float:
    """The forward FLOPs with each weight in `densities` at that density (its module's FLOPs scaled)."""
    total = dense
    for name, density in densities.items():
        total -= layers[name] * (1.0 - density)
    return total
