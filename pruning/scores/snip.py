"""snipN: connection sensitivity |w * dL/dw| (Lee et al., 2019).

L is the mean cross-entropy over N examples per class drawn from the training set without
augmentation, with the network in train mode, so the gradient is averaged over the examples.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from pruning.mask import Mask
from pruning.scores.base import ScoringData, loss_gradient, masked_copy


def snip_scores(model: nn.Module, mask: Mask, data: Optional[ScoringData], *, examples_per_class: int,
         ) -> dict[str, torch.Tensor]:
    if data is None:
        raise ValueError("snip needs training examples: pass ScoringData(examples=<loader>)")
    net, weights = masked_copy(model, mask, train=True)
    gradients = loss_gradient(net, weights, data, examples_per_class)
    return {name: (w.detach() * g).abs() for name, w, g in zip(mask, weights, gradients)}
