"""random: i.i.d. uniform scores drawn on the CPU from the scoring seed (the same on every device)."""

from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from pruning.mask import Mask
from pruning.scores.base import ScoringData

NAME = "random"
SUMMARY = "i.i.d. uniform scores drawn on the CPU from the scoring seed"


def random_scores(model: nn.Module, mask: Mask, data: Optional[ScoringData]) -> dict[str, torch.Tensor]:
    if data is None:
        raise ValueError("random scores need a seed: pass ScoringData(seed=...)")
    generator = torch.Generator().manual_seed(data.seed)
    return {name: torch.rand(alive.shape, generator=generator).to(alive.device)
            for name, alive in mask.items()}


SCORE = random_scores
