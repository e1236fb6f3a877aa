"""dyn_tril_damp (a constraint): tril_damp with damping * sin^4(pi x / 2) at progress x, so
the damping rises from 0 at the start of training to `damping` at the end."""

from __future__ import annotations

import torch

from pruning.rules.base import Rule, check_damping, sin4
from pruning.rules.tril_damp import damp_lower

NAME = "dyn_tril_damp"
SUMMARY = "tril_damp whose damping rises from 0 to damping over training (sin^4; a constraint)"


class DynTrilDamp(Rule):
    """Damp the strictly lower triangle by a sin^4-ramped fraction per step."""

    constraint = True

    def __init__(self, damping: float) -> None:
        self.damping = check_damping(damping)

    def damping_at(self, progress: float) -> float:
        return self.damping * sin4(progress)

    def apply(self, weight: torch.Tensor, progress: float) -> None:
        with torch.no_grad():
            damp_lower(weight, self.damping_at(progress), "dyn_tril_damp")


RULE = DynTrilDamp
