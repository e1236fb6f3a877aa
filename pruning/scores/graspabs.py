"""graspabsN: |GraSP score|, |w * (H g)|, so weights that change the gradient flow most in either
direction are kept (the lowest are pruned)."""

from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from pruning.mask import Mask
from pruning.scores.base import ScoringData
from pruning.scores.grasp import grasp_scores

NAME = "graspabs"
SUMMARY = "the absolute GraSP score |w * (H g)| on N examples per class"


def graspabs_scores(model: nn.Module, mask: Mask, data: Optional[ScoringData], *, examples_per_class: int,
             ) -> dict[str, torch.Tensor]:
    scores = grasp_scores(model, mask, data, examples_per_class=examples_per_class)
    return {name: score.abs() for name, score in scores.items()}


SCORE = graspabs_scores
