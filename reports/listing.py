"""Runs as rows: one per trunk, per oneshot-like branch, and per level of a level branch; and the
hparam columns worth showing: in a table those that differ between the rows and a branch's own
settings (so a filtered listing still says its strategy or rule); in CSV and JSON every one."""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from foundations.bundles import TRUNK_BUNDLES
from foundations.tables import hparam_text, table
from reports import compute_columns
from reports.rundirs import Run

LEADING = ["kind", "level", "replicate", "status", "step"]
TRAILING = ["test_accuracy", "result", "density", *compute_columns.SHOWN, "run"]  # result: a branch's headline
PERPLEXITY = "test_perplexity"  # a language model's row leads with it (reports/metric.py)
COMPUTE = [c for c in compute_columns.COLUMNS if c not in compute_columns.SHOWN]  # CSV and JSON only


def rows(runs: list[Run]) -> list[dict[str, Any]]:
    """Every row with its hparams by field name, status, accuracy, density and relative path."""
    result = []
    for run in runs:
        base = {"_run": run, "kind": run.kind, "replicate": run.replicate, "hash": run.hash,
                "parent_hash": run.parent_hash, **run.environment, **run.fields()}
        entries = [(level.number, level.path, level.state) for level in run.levels] or [(None, run.path, run.state)]
        for number, path, state in entries:
            result.append({**base, "level": number, "status": state.status, "step": state.step,
                           "test_accuracy": state.test_accuracy, PERPLEXITY: state.test_perplexity,
                           "result": state.headline_text(),
                           "density": state.density, **compute_columns.values(state.compute),
                           "note": state.note, "run": str(path.relative_to(run.root))})
    return result


def trailing(table_rows: list[dict[str, Any]], *, every: bool = False) -> list[str]:
    """TRAILING for these rows: with language models among them, `test_perplexity` beside
    `test_accuracy` (CSV and JSON, `every`, or a table that also holds classifiers) or in its place
    (a table of language models alone: their test_accuracy is next-token accuracy); rows without
    one give TRAILING unchanged."""
    models = [row for row in table_rows if row.get(PERPLEXITY) is not None]
    if not models:
        return list(TRAILING)
    classifiers = any(row.get("test_accuracy") is not None and row.get(PERPLEXITY) is None for row in table_rows)
    at = TRAILING.index("test_accuracy")
    lead = ["test_accuracy", PERPLEXITY] if every or classifiers else [PERPLEXITY]
    return TRAILING[:at] + lead + TRAILING[at + 1:]


def differing(table_rows: list[dict[str, Any]]) -> list[str]:
    """The hparam field names that take more than one value among the rows that have them, in
    bundle order (a field only some kinds of run have is shown only if it varies among those)."""
    names: dict[str, None] = {}
    for run in {id(row["_run"]): row["_run"] for row in table_rows}.values():
        names.update((name, None) for name in run.fields() if "." not in name)
    return [name for name in names
            if len({hparam_text(row[name]) for row in table_rows if name in row}) > 1]


ENVIRONMENT = ["python", "torch", "cuda", "cudnn", "device", "processes", "threads", "hostname", "git_commit",
               "git_dirty"]  # where a run ran (platforms/environment.py): CSV and JSON columns, --where keys


def every_field(table_rows: list[dict[str, Any]]) -> list[str]:
    """Every hparam field name of the rows' runs, in bundle order (what CSV and JSON carry)."""
    names: dict[str, None] = {}
    for run in {id(row["_run"]): row["_run"] for row in table_rows}.values():
        names.update((name, None) for name in run.fields() if "." not in name)
    return list(names)


def defining(table_rows: list[dict[str, Any]]) -> list[str]:
    """The columns of a table: the fields that differ between the rows, and every branch field set
    away from its default in some row (the settings that make the branch what it is)."""
    runs = list({id(row["_run"]): row["_run"] for row in table_rows}.values())
    defaults = branch_defaults({run.kind for run in runs if not run.is_trunk})
    own = {name for run in runs for bundle, values in run.hparams.items() if bundle not in TRUNK_BUNDLES
           for name, value in values.items() if value != defaults.get(run.kind, {}).get(bundle, {}).get(name)}
    varying = set(differing(table_rows))
    return [name for name in every_field(table_rows) if name in varying or name in own]


def branch_defaults(kinds: set[str]) -> dict[str, dict[str, dict[str, Any]]]:
    """{kind: {bundle key: {field: default}}} for the branches of these kinds, importing only
    their modules (a kind no branch has, written by another version perhaps, has none)."""
    from runs.registry import BRANCHES

    found: dict[str, dict[str, dict[str, Any]]] = {}
    for kind in kinds:
        name = kind[len("branch_"):]
        bundles = BRANCHES.get(name).BUNDLES if name in BRANCHES.entries else {}
        found[kind] = {key: {f.name: f.default for f in fields(cls)} for key, cls in bundles.items()}
    return found


def own_hparams(run: Run, defaults: dict[str, dict[str, Any]]) -> list[str]:
    """A branch's own hparams that differ from their defaults, as `field=value`."""
    shown = []
    for bundle, values in run.hparams.items():
        if bundle in TRUNK_BUNDLES:
            continue
        known = defaults.get(bundle, {})
        shown += [f"{name}={hparam_text(value)}" for name, value in values.items()
                  if value != known.get(name, None)]
    return shown


def fit(columns: list[str], hparams: list[str], table_rows: list[dict[str, Any]], width: int,
        formats: dict) -> tuple[list[str], list[str]]:
    """The columns of a table at most `width` characters wide, leaving out hparam columns (the
    rightmost first) until it fits or none is left; and the hparam columns left out."""
    kept, dropped = list(columns), []
    droppable = [c for c in reversed(columns) if c in hparams]
    while droppable and max(map(len, table(kept, table_rows, formats).splitlines())) > width:
        name = droppable.pop(0)
        kept.remove(name)
        dropped.insert(0, name)
    return kept, dropped
