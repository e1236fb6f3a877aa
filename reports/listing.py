"""Runs as rows: one per trunk, per oneshot-like branch, and per level of a level branch; and the
hparam columns worth showing (those that differ between the rows)."""

from __future__ import annotations

from typing import Any

from foundations.tables import hparam_text
from reports.rundirs import Run

LEADING = ["kind", "level", "replicate", "status", "step"]
TRAILING = ["test_accuracy", "density", "run"]


def rows(runs: list[Run]) -> list[dict[str, Any]]:
    """Every row with its hparams by field name, status, accuracy, density and relative path."""
    result = []
    for run in runs:
        base = {"_run": run, "kind": run.kind, "replicate": run.replicate, "hash": run.hash,
                "parent_hash": run.parent_hash, **run.fields()}
        entries = [(level.number, level.path, level.state) for level in run.levels] or [(None, run.path, run.state)]
        for number, path, state in entries:
            result.append({**base, "level": number, "status": state.status, "step": state.step,
                           "test_accuracy": state.test_accuracy, "density": state.density,
                           "note": state.note, "run": str(path.relative_to(run.root))})
    return result


def differing(table_rows: list[dict[str, Any]]) -> list[str]:
    """The hparam field names that take more than one value among the rows that have them, in
    bundle order (a field only some kinds of run have is shown only if it varies among those)."""
    names: dict[str, None] = {}
    for run in {id(row["_run"]): row["_run"] for row in table_rows}.values():
        names.update((name, None) for name in run.fields() if "." not in name)
    return [name for name in names
            if len({hparam_text(row[name]) for row in table_rows if name in row}) > 1]
