"""threshold: zero every weight with |w| < tau after each step.

With no threshold given, tau is fixed at the first step to the (n // 2)-th smallest |w| of the
weight's n entries, counted from 1 as torch.kthvalue does (at least the 1st), and kept for the
rest of training (it is the rule's state, so a checkpoint carries it). Since the cut is strict,
that prunes n // 2 - 1 weights at the first step when magnitudes are distinct.
"""

from __future__ import annotations

from typing import Optional

import torch

from pruning.rules.base import Rule, check_threshold

NAME = "threshold"
SUMMARY = "zero every |w| below a threshold, given or frozen from the first step's weights"


class Threshold(Rule):
    """Magnitude threshold, given or frozen from the first step's weights."""

    def __init__(self, threshold: Optional[float] = None) -> None:
        self.given = None if threshold is None else check_threshold(threshold)
        self.frozen: torch.Tensor | None = None

    @staticmethod
    def first_step_threshold(weight: torch.Tensor) -> torch.Tensor:
        """The (n // 2)-th smallest magnitude (1-based, at least the first), as a 0-d tensor."""
        magnitudes = weight.detach().abs().flatten()
        return torch.kthvalue(magnitudes, max(magnitudes.numel() // 2, 1)).values

    def apply(self, weight: torch.Tensor, progress: float) -> None:
        with torch.no_grad():
            if self.given is not None:
                tau = self.given
            else:
                if self.frozen is None:
                    self.frozen = self.first_step_threshold(weight)
                tau = self.frozen.to(weight.device)
            weight.masked_fill_(weight.abs() < tau, 0)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {} if self.frozen is None else {"threshold": self.frozen}

    def _state_keys(self) -> tuple[str, ...]:
        return ("threshold",)

    def _load(self, state: dict[str, torch.Tensor]) -> None:
        self.frozen = state["threshold"].clone() if "threshold" in state else None


RULE = Threshold
