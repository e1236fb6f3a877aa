"""graspN: gradient signal preservation, -w * (H g) (Wang et al., 2020).

Per batch of the N-per-class examples (train mode, unaugmented, logits divided by a temperature
of 200): g is the gradient of the batch's mean cross-entropy restricted to the weights still
alive, and H g the Hessian of that loss times g, computed as the gradient of g . dL/dw. The
batches' -w * (H g) are averaged with weights proportional to their sizes (one batch: GraSP as
published; training-sized batches: the "Missing the Mark" fork). Selection prunes the lowest
scores by default; pruning the highest is the published GraSP.

H g needs the second derivative of attention: PyTorch's fused scaled_dot_product_attention
kernels have no double backward, so the score runs attention through the math backend (the same
function, written out in ops that autograd differentiates twice); networks without attention are
unaffected.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel

from pruning.mask import Mask
from pruning.scores.base import ScoringData, batch_losses, masked_copy

NAME = "grasp"
SUMMARY = "gradient signal preservation -w * (H g) on N examples per class"

TEMPERATURE = 200.0


def grasp_scores(model: nn.Module, mask: Mask, data: Optional[ScoringData], *, examples_per_class: int,
                 ) -> dict[str, torch.Tensor]:
    if data is None:
        raise ValueError("grasp needs training examples: pass ScoringData(examples=<loader>)")
    net, weights = masked_copy(model, mask, train=True)
    alive = [mask[name].to(w.device, w.dtype) for name, w in zip(mask, weights)]
    total = [torch.zeros_like(w) for w in weights]
    with sdpa_kernel(SDPBackend.MATH):  # the fused attention kernels have no double backward
        for loss, share in batch_losses(net, data, examples_per_class, TEMPERATURE):
            gradient = torch.autograd.grad(loss, weights, create_graph=True)
            direction = [(g * a).detach() for g, a in zip(gradient, alive)]
            product = torch.autograd.grad(sum((g * d).sum() for g, d in zip(gradient, direction)), weights)
            for acc, w, hg in zip(total, weights, product):
                acc.add_(-w.detach() * hg, alpha=share)
    return dict(zip(mask, total))


SCORE = grasp_scores
