"""Rows of values shown as an aligned table, CSV or JSON: what every command prints.

    print_table(header, rows)          rows of strings, as a command's summary
    render(columns, rows, fmt)         rows of typed values (dicts), as table, csv or json
"""

from __future__ import annotations

import csv
import io
import json
import math
from typing import Any, Optional


def cell(value: Any, digits: int = 4) -> str:
    """How a value reads in a table: '-' for nothing, true/false, floats to `digits` places."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def hparam_text(value: Any) -> str:
    """An hparam value as a flag would write it (floats unrounded)."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def table(columns: list[str], rows: list[dict], formats: Optional[dict] = None) -> str:
    """Aligned columns with a rule under the header. `formats` maps a column to a function."""
    formats = formats or {}
    text = [[formats.get(c, cell)(row.get(c)) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in text)) if text else len(c) for i, c in enumerate(columns)]
    def line(cells):
        return "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()
    return "\n".join([line(columns), line(["-" * w for w in widths]), *map(line, text)])


def to_csv(columns: list[str], rows: list[dict]) -> str:
    """CSV with a header; None is an empty field (pandas reads it as NaN)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_csv_field(row.get(c)) for c in columns])
    return buffer.getvalue()


def _csv_field(value: Any) -> Any:
    if value is None:
        return ""
    return hparam_text(value) if isinstance(value, bool) else value


def to_json(columns: list[str], rows: list[dict]) -> str:
    return json.dumps([{c: row.get(c) for c in columns} for row in rows], indent=1, default=str)


def render(columns: list[str], rows: list[dict], fmt: str, formats: Optional[dict] = None) -> str:
    if fmt == "csv":
        return to_csv(columns, rows).rstrip("\n")
    if fmt == "json":
        return to_json(columns, rows)
    return table(columns, rows, formats)


def print_table(header: list[str], rows: list[list[str]]) -> None:
    """Rows of already formatted cells under their header, aligned."""
    print(table(header, [dict(zip(header, row)) for row in rows], formats={column: str for column in header}))


def format_metric(value: object) -> str:
    """A metric for a table: four decimals, or '-' where it does not exist (regression accuracy)."""
    return f"{value:.4f}" if isinstance(value, (int, float)) else "-"
