"""snipN: connection sensitivity |w * dL/dw| (Lee et al., 2019).

L is the mean cross-entropy over a batch of the N-per-class examples (drawn from the training set
without augmentation, network in train mode). With one batch (ScoringData.batch_size None) this
is SNIP as published; with training-sized batches it is the "Missing the Mark" fork's score: the
batches' |w * dL_b/dw| averaged with weights proportional to their sizes.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from pruning.mask import Mask
from pruning.scores.base import ScoringData, batch_losses, masked_copy

NAME = "snip"
SUMMARY = "connection sensitivity |w * dL/dw| on N examples per class"


def snip_scores(model: nn.Module, mask: Mask, data: Optional[ScoringData], *, examples_per_class: int,
                ) -> dict[str, torch.Tensor]:
    if data is None:
        raise ValueError("snip needs training examples: pass ScoringData(examples=<loader>)")
    net, weights = masked_copy(model, mask, train=True)
    total = [torch.zeros_like(w) for w in weights]
    for loss, share in batch_losses(net, data, examples_per_class):
        gradients = torch.autograd.grad(loss, weights)
        for acc, w, g in zip(total, weights, gradients):
            acc.add_((w.detach() * g).abs(), alpha=share)
    return dict(zip(mask, total))


SCORE = snip_scores
