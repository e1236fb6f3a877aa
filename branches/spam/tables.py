"""The sweep's table: rows sparsity, columns network x criterion, cells test accuracy; on disk as
table.csv and table.json (every metric of every cell), rewritten only when they change, so a rerun
touches nothing. They hold every cell the branch has finished, not only the last request's: a
rerun with fewer sparsities or criteria prints its own rows and leaves the stored table whole."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Optional

from foundations.tables import format_metric
from platforms.storage import json_safe, read_json, write_text
from pruning.nm import PATTERN

TABLE = "table"


# What accuracy_of gives per task, as a column name.
METRIC_NAMES = {"language_modeling": "test perplexity", "regression": "test mse"}


def row_header(branch) -> list[str]:
    """The summary table's header: its metric column says what accuracy_of gives for this task."""
    return ["network", "density", METRIC_NAMES.get(branch.trunk.info.task, "test accuracy"), "run"]


def accuracy_of(record: dict, finetuned: bool = False) -> Optional[float]:
    """A cell's test accuracy (after fine-tuning if asked), its mean squared error for regression,
    or its perplexity for a language model (lower is better)."""
    source = record.get("finetuned", {}) if finetuned else record
    return source.get("perplexity", source.get("accuracy", source.get("mse")))


def tabulate(records: list[dict], structure: str) -> tuple[list[str], list[list[str]]]:
    """Rows: sparsity (dense first); columns: network/criterion (and +ft after fine-tuning); cells:
    test accuracy (mse for regression, perplexity for a language model). Unit structures add the
    compacted parameters and MFLOPs."""
    columns: dict[str, None] = {}
    rows: dict[float, dict[str, str]] = {}
    extras: dict[float, dict[str, str]] = {}
    dense = {r["model"]: r for r in records if r["criterion"] is None}
    for record in records:
        if record["criterion"] is None:
            continue
        key = f"{record['model']}/{record['criterion']}"
        columns[key] = None
        row = rows.setdefault(record["sparsity"], {})
        row[key] = format_metric(accuracy_of(record))
        if "finetuned" in record:
            columns[key + "+ft"] = None
            row[key + "+ft"] = format_metric(accuracy_of(record, finetuned=True))
        if "parameters" in record and record["sparsity"] not in extras:
            extras[record["sparsity"]] = {"params": str(record["parameters"]), "MFLOPs": f"{record['flops'] / 1e6:.3f}"}
    extra_columns = ["params", "MFLOPs"] if extras else []
    header = ["sparsity %", *columns, *extra_columns]
    table = []
    first_dense = next(iter(dense.values()), {})
    dense_row = ["0 (dense)"] + [format_metric(accuracy_of(dense[c.split("/")[0]])) if c.split("/")[0] in dense
                                 else "-" for c in columns]
    if extras:
        dense_row += [str(first_dense.get("parameters", "-")), f"{first_dense.get('flops', 0) / 1e6:.3f}"]
    table.append(dense_row)
    label = f" ({structure})" if PATTERN.match(structure) else ""
    for sparsity, row in rows.items():
        cells = [row.get(c, "-") for c in columns]
        more = [extras.get(sparsity, {}).get(c, "-") for c in extra_columns]
        table.append([f"{sparsity:g}{label}", *cells, *more])
    return header, table


def csv_text(header: list[str], rows: list[list[str]]) -> str:
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return text.getvalue()


def write_if_changed(content: str, path: Path) -> None:
    if not path.exists() or path.read_text() != content:
        write_text(content, path)


def write_table(directory: Path, header: list[str], rows: list[list[str]], records: list[dict]) -> None:
    """table.csv and table.json in `directory` (see the module docstring)."""
    write_if_changed(csv_text(header, rows), Path(directory) / f"{TABLE}.csv")
    everything = {"header": header, "rows": rows, "cells": records}
    write_if_changed(json.dumps(json_safe(everything), indent=2, sort_keys=True, allow_nan=False) + "\n",
                     Path(directory) / f"{TABLE}.json")


def stored_records(directory: Path) -> list[dict]:
    """The cells of the table.json in `directory` (none when it is missing or unreadable)."""
    try:
        table = read_json(Path(directory) / f"{TABLE}.json")
    except (OSError, ValueError):
        return []
    cells = table.get("cells") if isinstance(table, dict) else None
    return [c for c in cells if isinstance(c, dict) and "model" in c] if isinstance(cells, list) else []


def merged_records(records: list[dict], stored: list[dict]) -> list[dict]:
    """`records` with the `stored` cells they lack (a cell is network x criterion x sparsity; the
    new record wins): dense cells first, then by sparsity; the stored table's columns keep their
    order and new ones follow."""
    def key(record: dict) -> tuple:
        return record["model"], record["criterion"], record.get("sparsity")

    cells = {key(r): r for r in stored}
    cells.update({key(r): r for r in records})
    columns: dict[tuple, int] = {}
    for record in [*stored, *records]:
        columns.setdefault(key(record)[:2], len(columns))
    dense = [r for r in cells.values() if r["criterion"] is None]
    pruned = [r for r in cells.values() if r["criterion"] is not None]
    return [*sorted(dense, key=lambda r: columns[key(r)[:2]]),
            *sorted(pruned, key=lambda r: (r["sparsity"], columns[key(r)[:2]]))]


def cell_results(cells: list[dict]) -> list:
    """Every cell (network x criterion x sparsity) with its metrics, as the rows `report` summarizes."""
    def label(cell: dict) -> str:
        return f"{cell['model']} dense" if cell["criterion"] is None else \
            f"{cell['model']}/{cell['criterion']} {cell['sparsity']:g}%"

    metrics = ("accuracy", "perplexity", "mse", "nll", "brier", "ece")
    return [[label(c), {m: c[m] for m in metrics if isinstance(c.get(m), (int, float))}] for c in cells]
