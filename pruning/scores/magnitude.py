"""magnitude: |w| of the weights as given (pruned weights score 0)."""

from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from pruning.mask import Mask
from pruning.scores.base import ScoringData

NAME = "magnitude"
SUMMARY = "|w| of the weights as given (pruned weights score 0)"


def magnitude_scores(model: nn.Module, mask: Mask, data: Optional[ScoringData] = None,
                     ) -> dict[str, torch.Tensor]:
    state = model.state_dict()
    return {name: state[name].detach().abs() * alive.to(state[name].device)
            for name, alive in mask.items()}


SCORE = magnitude_scores
