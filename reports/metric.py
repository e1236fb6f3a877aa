"""The number a listing, tree or report leads with: test accuracy for a classifier, test perplexity
for a language model (whose evaluation writes `test_perplexity`; lower is better, and every header
and axis label that shows it says so). A run set holding any language-model result leads with
perplexity; one without keeps every output exactly as it was for classifiers.

A result's best value over training is the highest accuracy, or the lowest perplexity, of its
metrics.jsonl.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from foundations import paths
from reports.readers import read_metrics, series
from reports.rundirs import State


@dataclass(frozen=True)
class Metric:
    key: str                # the key in done.json's metrics and metrics.jsonl, and State's attribute
    words: str              # "test accuracy"
    tag: str                # the tree's "acc 0.9123"
    lower_is_better: bool
    bounded: bool           # a fraction in [0, 1] (a plot's bands are clipped to it)

    @property
    def header(self) -> str:
        """'test perplexity (lower is better)': the words, with the direction where it is not the usual."""
        return f"{self.words} (lower is better)" if self.lower_is_better else self.words

    def of(self, state: State) -> Optional[float]:
        return getattr(state, self.key)

    def best(self, values: Iterable[float]) -> Optional[float]:
        found = list(values)
        return (min if self.lower_is_better else max)(found) if found else None


ACCURACY = Metric("test_accuracy", "test accuracy", "acc", lower_is_better=False, bounded=True)
PERPLEXITY = Metric("test_perplexity", "test perplexity", "ppl", lower_is_better=True, bounded=False)


def is_language_model(state: State) -> bool:
    return state.test_perplexity is not None


def lead(states: Iterable[State]) -> Metric:
    """PERPLEXITY when any of the states is a language model's result, else ACCURACY."""
    return PERPLEXITY if any(is_language_model(s) for s in states) else ACCURACY


def of_state(state: State) -> Metric:
    """The metric one run leads with (the tree's choice, node by node)."""
    return PERPLEXITY if is_language_model(state) else ACCURACY


def metrics_file(path: Path, level: Optional[int]) -> Path:
    """Where a result's curve is: its own metrics.jsonl, or for a level 0 that wrote none, the
    trunk's (level 0 is the trunk: <replicate>/main beside the branch)."""
    own = Path(path) / paths.METRICS
    if level == 0 and not own.exists():
        return Path(path).parent.parent / paths.TRUNK_DIR / paths.METRICS
    return own


def curve(path: Path, level: Optional[int], metric: Metric) -> list[tuple[int, float]]:
    """(iteration, value) of one metric during a result's training."""
    return series(read_metrics(metrics_file(path, level)), metric.key)
