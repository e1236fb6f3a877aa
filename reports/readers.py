"""Reading the files of a run directory without trusting them.

Another process may be writing the root: a file may be missing, half-written or corrupt. These
readers never raise on content; they say what they found.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Optional

from training.metrics import read_records


class Unreadable:
    """A file that exists but could not be read or parsed."""

    def __repr__(self) -> str:
        return "UNREADABLE"


UNREADABLE = Unreadable()


def read_json(path: Path) -> Any:
    """The parsed file, None when it does not exist, UNREADABLE when it exists but is not JSON."""
    try:
        text = Path(path).read_text()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError):
        return UNREADABLE
    try:
        return json.loads(text)
    except ValueError:
        return UNREADABLE


def number(value: Any) -> Optional[float]:
    """A finite float, or None for anything else (missing, a string, NaN)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def read_metrics(path: Path) -> list[dict]:
    """The well-formed records of a metrics.jsonl with a numeric value (iteration, step, name,
    value); a half-written or foreign line is skipped, a missing file is empty."""
    return [record for record in read_records(path)
            if isinstance(record["iteration"], int) and isinstance(record["name"], str)
            and number(record["value"]) is not None]


def series(records: list[dict], name: str) -> list[tuple[int, float]]:
    """(iteration, value) of one metric, in file order; a value logged twice for an iteration
    (a resumed run's overlap) keeps the last."""
    by_iteration: dict[int, float] = {}
    for record in records:
        if record["name"] == name:
            by_iteration[record["iteration"]] = float(record["value"])
    return sorted(by_iteration.items())
