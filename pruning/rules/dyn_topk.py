"""dyn_topk: top-k whose kept fraction falls from 1 to `keep` over training.

k'(x) = 1 - (1 - keep) * sin^4(pi x / 2) at progress x, then the floor(k' * numel) largest |w|
are kept as in topk: nothing is pruned at the start, exactly topk's count at the end.
"""

from __future__ import annotations

import math

import torch

from pruning.rules.base import Rule, check_keep, sin4
from pruning.rules.topk import keep_largest

NAME = "dyn_topk"
SUMMARY = "top-k whose kept fraction falls from 1 to keep over training (sin^4)"


class DynTopK(Rule):
    """Top-k with a sin^4 ramp of the pruned fraction."""

    def __init__(self, keep: float) -> None:
        self.keep = check_keep(keep)

    def kept_fraction(self, progress: float) -> float:
        return 1 - (1 - self.keep) * sin4(progress)

    def apply(self, weight: torch.Tensor, progress: float) -> None:
        with torch.no_grad():
            keep_largest(weight, math.floor(self.kept_fraction(progress) * weight.numel()))


RULE = DynTopK
