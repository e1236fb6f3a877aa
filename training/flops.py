"""Forward FLOPs per example of a (pruned) network.

The dense count is PyTorch's own (`torch.utils.flop_counter.FlopCounterMode`, 2 FLOPs per
multiply-accumulate of every matmul and convolution; element-wise ops such as bias adds and
activations are not counted) on one example. A layer whose weight is pruned to density d is
counted as d times its dense FLOPs: what a sparse kernel that skips the zeros would do. FLOPs
outside the weighted layers are kept as they are.
"""

from __future__ import annotations

from typing import Mapping, Optional

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode


def forward_flops(model: torch.nn.Module, example: torch.Tensor,
                  masks: Optional[Mapping[str, torch.Tensor]] = None) -> float:
    """FLOPs of one forward pass of `example` (one input, without its batch dimension), with
    each weight named in `masks` (``"<module>.weight"`` -> 0/1 tensor) counted at its density."""
    was_training = model.training
    model.eval()
    # The math backend of scaled_dot_product_attention is made of matmuls the counter sees; the
    # fused CPU kernel is not counted at all (its two products are 4 * tokens^2 * width FLOPs a block).
    with torch.no_grad(), sdpa_kernel([SDPBackend.MATH]), FlopCounterMode(display=False) as counter:
        model(example.unsqueeze(0))
    model.train(was_training)
    counts = counter.get_flop_counts()
    total = float(counter.get_total_flops())
    root = type(model).__name__
    for name, mask in (masks or {}).items():
        module = name.rsplit(".", 1)[0] if "." in name else ""
        dense = float(sum(counts.get(f"{root}.{module}" if module else root, {}).values()))
        density = float(mask.count_nonzero()) / mask.numel() if mask.numel() else 1.0
        total -= dense * (1.0 - density)
    return total
