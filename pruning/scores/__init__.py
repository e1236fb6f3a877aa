"""The score registry: a strategy string names a score and, for data-driven ones, how many
examples per class it reads ('snip10' = SNIP on 10 examples of every class).

    score = scores.get("grasp10")
    per_weight = score(model, mask, ScoringData(examples=loader, seed=7))

A score is an entry of the registry convention (foundations/registry.py): a module in
pruning/scores/ that assigns, at its top level,

    NAME = "snip"                    the strategy word
    SUMMARY = "connection sensitivity ..."   one line for listings
    SCORE = snip_scores              the function score(model, mask, data) -> {weight name: scores}

Nothing here lists them, so adding a score is adding one file (base.py, a helper, declares no
NAME). A score whose function takes an `examples_per_class` keyword reads training examples and is
written `<NAME>N`. Listing the scores' names (`SCORES.names()`) imports none of them; `get` imports
the one it names; `names()`, DATA_FREE and PER_CLASS import them all.
"""

from __future__ import annotations

import functools
import inspect
import re
from collections.abc import Callable

from foundations.errors import UserError
from foundations.registry import Registry
from pruning.scores.base import ExampleSource, Score, ScoringData

SCORES = Registry("pruning.scores", kind="score", attribute="SCORE", expected=callable, expected_as="a function")

__all__ = ["SCORES", "ExampleSource", "Score", "ScoringData", "canonical", "get", "names"]


def _reads_examples(score: Callable) -> bool:
    return "examples_per_class" in inspect.signature(score).parameters


def _by_kind() -> tuple[dict[str, Callable], dict[str, Callable]]:
    """({name: score} of the data-free scores, {name: score} of the per-class ones), in name order."""
    data_free, per_class = {}, {}
    for name in SCORES.names():
        score = SCORES.get(name)
        (per_class if _reads_examples(score) else data_free)[name] = score
    return data_free, per_class


def __getattr__(attribute: str):
    """DATA_FREE and PER_CLASS ({name: score function}), built when asked for: they import every score."""
    if attribute in ("DATA_FREE", "PER_CLASS"):
        return _by_kind()[attribute == "PER_CLASS"]
    raise AttributeError(f"module {__name__!r} has no attribute {attribute!r}")


def names() -> list[str]:
    """Every valid strategy form, N standing for the examples per class."""
    data_free, per_class = _by_kind()
    return list(data_free) + [f"{name}N" for name in per_class]


def canonical(strategy: str) -> str:
    """The one spelling of a strategy (lower case, stripped: ' SNIP10' -> 'snip10'), checked: what
    a flag naming a score stores and hashes, so that one score is one run. A UserError for a
    strategy `get` refuses."""
    get(strategy)
    return strategy.strip().lower()


def get(strategy: str) -> Score:
    """The score a strategy string names; a UserError listing the valid forms otherwise."""
    match = re.fullmatch(r"([a-z]+)(\d*)", strategy.strip().lower()) if isinstance(strategy, str) else None
    if match is None or match[1] not in SCORES.entries:
        raise UserError(f"unknown pruning strategy {strategy!r}: use one of {', '.join(names())} "
                        "(N = examples per class, e.g. snip10)")
    name, count = match[1], match[2]
    score = SCORES.get(name)
    if not _reads_examples(score):
        if count:
            raise UserError(f"strategy {strategy!r}: {name} takes no example count, write {name!r}")
        return score
    if not count or int(count) < 1:
        raise UserError(f"strategy {strategy!r}: {name} needs N >= 1 examples per class, e.g. {name}10")
    return functools.partial(score, examples_per_class=int(count))
