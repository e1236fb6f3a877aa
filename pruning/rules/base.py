"""What a per-step pruning rule is, the checks of its settings, and the sin^4 schedule.

A rule rewrites a weight in place after every optimizer step (not a fixed mask: a rule may let
pruned weights grow back). It holds only what must survive a checkpoint for a bitwise resume
(a drawn mask, a frozen threshold), as plain tensors in `state_dict()`.
"""

from __future__ import annotations

import math
from typing import ClassVar

import torch

from foundations.errors import UserError

SETTINGS = {
    "keep": "the fraction of weights kept, in (0, 1]",
    "prune_fraction": "the fraction of weights pruned, in [0, 1)",
    "threshold": "the magnitude below which weights are zeroed, >= 0 (omit it: the median of the first step)",
    "damping": "the fraction of every strictly-lower-triangle weight removed per step, in [0, 1]",
    "seed": "the seed of the random mask",
}


class Rule:
    """Subclasses set `constraint` and implement `apply`; stateful ones override the state pair.

    `constraint` marks rules that act on the orderedness metric itself (the tril_* family: they
    push weight out of the lower triangle), so that results never pool them with rules under
    which orderedness can only emerge.
    """

    constraint: ClassVar[bool] = False

    def apply(self, weight: torch.Tensor, progress: float) -> None:
        """Rewrite `weight` in place; `progress` in [0, 1] is how far training has got."""
        raise NotImplementedError

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        unexpected = sorted(set(state) - set(self._state_keys()))
        if unexpected:
            raise UserError(f"the saved state of pruning rule {type(self).__name__} holds unknown entries "
                            f"{', '.join(unexpected)}: the checkpoint is from another rule or corrupt")
        self._load(state)

    def _state_keys(self) -> tuple[str, ...]:
        return ()

    def _load(self, state: dict[str, torch.Tensor]) -> None:
        pass


def sin4(progress: float) -> float:
    """sin^4(pi x / 2): 0 at the start of training, 1 at the end, flat at both ends."""
    check_progress(progress)
    return math.sin(math.pi * progress / 2) ** 4


def check_progress(progress: float) -> None:
    if not isinstance(progress, (int, float)) or not 0.0 <= progress <= 1.0:
        raise ValueError(f"training progress must be a number in [0, 1], got {progress!r}")


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and not math.isnan(value)


def check_keep(keep: float) -> float:
    if not _is_number(keep) or not 0.0 < keep <= 1.0:
        raise UserError(f"keep={keep!r} is out of range: give {SETTINGS['keep']}")
    return float(keep)


def check_prune_fraction(fraction: float) -> float:
    if not _is_number(fraction) or not 0.0 <= fraction < 1.0:
        raise UserError(f"prune_fraction={fraction!r} is out of range: give {SETTINGS['prune_fraction']}")
    return float(fraction)


def check_damping(damping: float) -> float:
    if not _is_number(damping) or not 0.0 <= damping <= 1.0:
        raise UserError(f"damping={damping!r} is out of range: give {SETTINGS['damping']}")
    return float(damping)


def check_threshold(threshold: float) -> float:
    if not _is_number(threshold) or not 0.0 <= threshold < math.inf:
        raise UserError(f"threshold={threshold!r} is out of range: give {SETTINGS['threshold']}")
    return float(threshold)


def check_seed(seed: int) -> int:
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise UserError(f"seed={seed!r} is invalid: give a whole number ({SETTINGS['seed']})")
    return seed


def check_matrix(weight: torch.Tensor, rule: str) -> None:
    if weight.dim() != 2:
        raise UserError(f"pruning rule {rule} acts on the lower triangle of a 2-D weight, "
                        f"got shape {tuple(weight.shape)}: use it on a complete layer's weight")
