"""tril_prune (a constraint): W <- triu(W) after every step, zeroing the strictly lower
triangle in the weight's own index order (the diagonal, self-loops, stays)."""

from __future__ import annotations

import torch

from pruning.rules.base import Rule, check_matrix

NAME = "tril_prune"
SUMMARY = "zero the strictly lower triangle after every step (a constraint)"


class TrilPrune(Rule):
    """Keep only the upper triangle and the diagonal."""

    constraint = True

    def apply(self, weight: torch.Tensor, progress: float) -> None:
        check_matrix(weight, "tril_prune")
        with torch.no_grad():
            weight.triu_()


RULE = TrilPrune
