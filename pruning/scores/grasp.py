"""graspN: gradient signal preservation, -w * (H g) (Wang et al., 2020).

g is the gradient of the mean cross-entropy over N examples per class with the logits divided by
a temperature of 200 (train mode, unaugmented examples), restricted to the weights still alive;
H g is the Hessian of that loss times g, computed as the gradient of g . dL/dw. Selection prunes
the lowest scores by default; pruning the highest is the published GraSP.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from pruning.mask import Mask
from pruning.scores.base import ScoringData, loss_chunks, loss_gradient, masked_copy

TEMPERATURE = 200.0


def hessian_gradient_product(model: nn.Module, mask: Mask, data: ScoringData, examples_per_class: int,
                             ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """(weights, H g) for the masked copy of `model`, both in mask order."""
    net, weights = masked_copy(model, mask, train=True)
    gradient = loss_gradient(net, weights, data, examples_per_class, TEMPERATURE)
    torch._foreach_mul_(gradient, [mask[name].to(g.device, g.dtype) for name, g in zip(mask, gradient)])
    product = [torch.zeros_like(w) for w in weights]
    for loss in loss_chunks(net, data, examples_per_class, TEMPERATURE):
        chunk_gradient = torch.autograd.grad(loss, weights, create_graph=True)
        directional = sum((cg * g).sum() for cg, g in zip(chunk_gradient, gradient))
        torch._foreach_add_(product, torch.autograd.grad(directional, weights))
    return [w.detach() for w in weights], product


def grasp_scores(model: nn.Module, mask: Mask, data: Optional[ScoringData], *, examples_per_class: int,
          ) -> dict[str, torch.Tensor]:
    if data is None:
        raise ValueError("grasp needs training examples: pass ScoringData(examples=<loader>)")
    weights, product = hessian_gradient_product(model, mask, data, examples_per_class)
    return {name: -w * hg for name, w, hg in zip(mask, weights, product)}
