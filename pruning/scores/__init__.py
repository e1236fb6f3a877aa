"""The score registry: a strategy string names a score and, for data-driven ones, how many
examples per class it reads ('snip10' = SNIP on 10 examples of every class).

    score = scores.get("grasp10")
    per_weight = score(model, mask, ScoringData(examples=loader, seed=7))

Every module `pruning/scores/<name>.py` that defines `<name>_scores(model, mask, data)` is a
score, found here by itself: adding a score is adding one file. A score whose function takes an
`examples_per_class` keyword reads training examples and is written `<name>N`.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import pkgutil
import re

from foundations.errors import UserError
from pruning.scores.base import ExampleSource, Score, ScoringData


def _discover() -> tuple[dict, dict]:
    data_free, per_class = {}, {}
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
        module = importlib.import_module(f"{__name__}.{info.name}")
        function = getattr(module, f"{info.name}_scores", None)
        if function is None:
            continue
        takes_count = "examples_per_class" in inspect.signature(function).parameters
        (per_class if takes_count else data_free)[info.name] = function
    return data_free, per_class


DATA_FREE, PER_CLASS = _discover()

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
