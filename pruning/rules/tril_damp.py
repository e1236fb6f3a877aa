"""tril_damp (a constraint): W <- W - damping * tril(W, -1) after every step.

The strictly lower triangle is taken in the weight's own index order (for a complete layer's
(H+O) x (H+O+I) weight that is the square block's lower triangle; the input columns lie above
it). It pushes the layer towards the identity order directly, so it is a constraint on the
orderedness metric, not a rule under which orderedness emerges.
"""

from __future__ import annotations

import torch

from pruning.rules.base import Rule, check_damping, check_matrix

NAME = "tril_damp"
SUMMARY = "W <- W - damping * tril(W, -1) after every step (a constraint)"


def damp_lower(weight: torch.Tensor, damping: float, rule: str = "tril_damp") -> None:
    """weight -= damping * tril(weight, -1), in place."""
    check_matrix(weight, rule)
    if damping:
        weight.sub_(torch.tril(weight, diagonal=-1), alpha=damping)


class TrilDamp(Rule):
    """Damp the strictly lower triangle by a fixed fraction per step."""

    constraint = True

    def __init__(self, damping: float) -> None:
        self.damping = check_damping(damping)

    def apply(self, weight: torch.Tensor, progress: float) -> None:
        with torch.no_grad():
            damp_lower(weight, self.damping)


RULE = TrilDamp
