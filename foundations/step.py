"""Points in training, written as '160ep', '500it' or '2ep10it'.

A Step is an absolute iteration count; epochs are a way of writing it, so a Step needs the number
of iterations per epoch (from the dataset size and batch size) to be built from text or shown.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from foundations.errors import UserError

_STEP_RE = re.compile(r"^(?:(\d+)ep)?(?:(\d+)it)?$")


def check_step_syntax(text: str, flag: str = "step") -> None:
    """Raise UserError unless `text` is a well-formed step string."""
    if not isinstance(text, str) or not text or not _STEP_RE.match(text.strip()):
        raise UserError(f"--{flag}={text!r} is not a step: write it as '160ep', '500it' or '2ep10it'")


def check_nonzero_step(text: str, flag: str) -> None:
    """Raise UserError unless `text` is a well-formed step of at least one iteration."""
    check_step_syntax(text, flag)
    if not any(int(part) for part in _STEP_RE.match(text.strip()).groups() if part):
        raise UserError(f"--{flag}={text} must be at least 1it")


def check_step_list_syntax(text: str, flag: str) -> None:
    """Raise UserError unless `text` is a comma-separated list of step strings."""
    for part in text.split(","):
        check_step_syntax(part.strip(), flag)


def written_parts(text: str) -> tuple[int, int]:
    """(epochs, iterations) as a step string writes them: '2ep10it' -> (2, 10), '500it' -> (0, 500)."""
    check_step_syntax(text)
    epochs, iterations = _STEP_RE.match(text.strip()).groups()
    return int(epochs or 0), int(iterations or 0)


@dataclass(frozen=True, order=True)
class Step:
    iteration: int
    iterations_per_epoch: int

    def __post_init__(self) -> None:
        if self.iterations_per_epoch <= 0:
            raise ValueError(f"iterations_per_epoch must be positive, got {self.iterations_per_epoch}")
        if self.iteration < 0:
            raise ValueError(f"a step cannot be negative, got {self.iteration}")

    @classmethod
    def parse(cls, text: str, iterations_per_epoch: int, flag: str = "step") -> "Step":
        check_step_syntax(text, flag)
        epochs, iterations = _STEP_RE.match(text.strip()).groups()
        total = int(epochs or 0) * iterations_per_epoch + int(iterations or 0)
        return cls(total, iterations_per_epoch)

    @classmethod
    def parse_list(cls, text: str | None, iterations_per_epoch: int, flag: str) -> list["Step"]:
        if not text:
            return []
        return [cls.parse(part.strip(), iterations_per_epoch, flag) for part in text.split(",")]

    @classmethod
    def zero(cls, iterations_per_epoch: int) -> "Step":
        return cls(0, iterations_per_epoch)

    @property
    def ep(self) -> int:
        return self.iteration // self.iterations_per_epoch

    @property
    def it(self) -> int:
        return self.iteration % self.iterations_per_epoch

    def __str__(self) -> str:
        return f"{self.ep}ep{self.it}it"
