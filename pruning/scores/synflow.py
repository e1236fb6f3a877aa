"""synflow: iterative synaptic flow |w * dR/dw| (Tanaka et al., 2020), data free.

On a copy of the masked network in double precision and eval mode, every floating-point entry of
the state dict (parameters and BatchNorm statistics) is replaced by its absolute value, an
all-ones input of one example is passed through, and R is the sum of the outputs. Rescoring each
round of `prune_in_rounds` on the masked network gives the iterative method.

Undefined for a network that reads token ids through an embedding (the GPT): an all-ones input
of reals has no meaning there, and all-ones ids would be one token, not a flow through the weights.
Such a network gets one UserError line.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from foundations.errors import UserError
from pruning.mask import Mask
from pruning.scores.base import ScoringData, masked_copy

NAME = "synflow"
SUMMARY = "iterative synaptic flow |w * dR/dw| on an all-ones input (data free)"


def synflow_scores(model: nn.Module, mask: Mask, data: Optional[ScoringData]) -> dict[str, torch.Tensor]:
    if data is None or data.input_shape is None:
        raise ValueError("synflow needs the input shape: pass ScoringData(input_shape=(C, H, W))")
    if any(isinstance(module, nn.Embedding) for module in model.modules()):
        raise UserError("synflow feeds an all-ones input, which is undefined for a model that reads token ids "
                        "(a language model): use magnitude, random, snipN, graspN, graspabsN or opd")
    net, weights = masked_copy(model, mask, train=False, dtype=torch.float64)
    with torch.no_grad():
        for tensor in net.state_dict().values():
            if tensor.is_floating_point():
                tensor.abs_()
    ones = torch.ones((1, *data.input_shape), dtype=torch.float64, device=weights[0].device)
    flow = net(ones).sum()
    gradients = torch.autograd.grad(flow, weights)
    return {name: (w.detach() * g).abs() for name, w, g in zip(mask, weights, gradients)}


SCORE = synflow_scores
