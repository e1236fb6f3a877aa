"""random: a Bernoulli mask drawn once, each weight pruned with probability prune_fraction.

The mask is drawn at the first step from a CPU generator seeded with `seed` (the same mask on
every device), then multiplied in after every step; it is the rule's state, so a checkpoint
carries it. (prune_fraction is the fraction *pruned*: the paper's docstring calls it the fraction
kept, its code prunes it.)
"""

from __future__ import annotations

import torch

from foundations.errors import UserError
from pruning.rules.base import Rule, check_prune_fraction, check_seed

NAME = "random"
SUMMARY = "a random mask drawn once from the seed, each weight pruned with probability prune_fraction"


class RandomMask(Rule):
    """A fixed random mask."""

    def __init__(self, prune_fraction: float, seed: int) -> None:
        self.prune_fraction = check_prune_fraction(prune_fraction)
        self.seed = check_seed(seed)
        self.mask: torch.Tensor | None = None

    def draw(self, shape: torch.Size) -> torch.Tensor:
        generator = torch.Generator().manual_seed(self.seed)
        return torch.rand(shape, generator=generator) >= self.prune_fraction

    def apply(self, weight: torch.Tensor, progress: float) -> None:
        if self.mask is None:
            self.mask = self.draw(weight.shape).to(weight.device)
        elif self.mask.shape != weight.shape:
            raise UserError(f"pruning rule random drew its mask for shape {tuple(self.mask.shape)}, "
                            f"got a weight of shape {tuple(weight.shape)}: use one rule per weight")
        elif self.mask.device != weight.device:
            self.mask = self.mask.to(weight.device)
        with torch.no_grad():
            weight.masked_fill_(~self.mask, 0)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {} if self.mask is None else {"mask": self.mask}

    def _state_keys(self) -> tuple[str, ...]:
        return ("mask",)

    def _load(self, state: dict[str, torch.Tensor]) -> None:
        self.mask = state["mask"].to(torch.bool) if "mask" in state else None


RULE = RandomMask
