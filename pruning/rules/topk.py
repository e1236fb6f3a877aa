"""topk: keep the floor(keep * numel) largest |w| after every step; the rest are zeroed.

The ranking is redone every step, so a zeroed weight that the gradient pushes back above the
cut grows back. The count is floor(keep * numel) of the floating-point product, as written;
when it is 0 every weight is zeroed. Ties at the cut go to torch.topk.
"""

from __future__ import annotations

import math

import torch

from pruning.rules.base import Rule, check_keep

NAME = "topk"
SUMMARY = "keep the floor(keep * numel) largest |w|, re-ranked after every step"


def keep_largest(weight: torch.Tensor, count: int) -> None:
    """Zero all but the `count` largest-magnitude entries of `weight`, in place."""
    total = weight.numel()
    if count >= total:
        return
    if count <= 0:
        weight.zero_()
        return
    kept = torch.topk(weight.detach().abs().flatten(), count, sorted=False).indices
    alive = torch.zeros(total, dtype=torch.bool, device=weight.device)
    alive[kept] = True
    weight.masked_fill_(~alive.view(weight.shape), 0)


class TopK(Rule):
    """Keep a fixed fraction of the largest weights, re-ranked every step."""

    def __init__(self, keep: float) -> None:
        self.keep = check_keep(keep)

    def apply(self, weight: torch.Tensor, progress: float) -> None:
        with torch.no_grad():
            keep_largest(weight, math.floor(self.keep * weight.numel()))


RULE = TopK
