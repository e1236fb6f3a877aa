"""The score registry: a strategy string names a score and, for data-driven ones, how many
examples per class it reads ('snip10' = SNIP on 10 examples of every class).

    score = scores.get("grasp10")
    per_weight = score(model, mask, ScoringData(examples=loader, seed=7))
"""

from __future__ import annotations

import functools
import re

from foundations.errors import UserError
from pruning.scores.base import ExampleSource, Score, ScoringData
from pruning.scores.grasp import grasp_scores
from pruning.scores.graspabs import graspabs_scores
from pruning.scores.magnitude import magnitude_scores
from pruning.scores.random import random_scores
from pruning.scores.snip import snip_scores
from pruning.scores.synflow import synflow_scores

DATA_FREE = {"random": random_scores, "magnitude": magnitude_scores, "synflow": synflow_scores}
PER_CLASS = {"snip": snip_scores, "grasp": grasp_scores, "graspabs": graspabs_scores}

__all__ = ["ExampleSource", "Score", "ScoringData", "get", "names"]


def names() -> list[str]:
    """Every valid strategy form, N standing for the examples per class."""
    return list(DATA_FREE) + [f"{name}N" for name in PER_CLASS]


def get(strategy: str) -> Score:
    """The score a strategy string names; a UserError listing the valid forms otherwise."""
    valid = ", ".join(names())
    match = re.fullmatch(r"([a-z]+)(\d*)", strategy.strip().lower()) if isinstance(strategy, str) else None
    if match is None or match[1] not in DATA_FREE | PER_CLASS:
        raise UserError(f"unknown pruning strategy {strategy!r}: use one of {valid} "
                        "(N = examples per class, e.g. snip10)")
    name, count = match[1], match[2]
    if name in DATA_FREE:
        if count:
            raise UserError(f"strategy {strategy!r}: {name} takes no example count, write {name!r}")
        return DATA_FREE[name]
    if not count or int(count) < 1:
        raise UserError(f"strategy {strategy!r}: {name} needs N >= 1 examples per class, e.g. {name}10")
    return functools.partial(PER_CLASS[name], examples_per_class=int(count))
