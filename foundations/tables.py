"""Plain-text tables for what a command produced."""

from __future__ import annotations


def print_table(header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows)]
    line = lambda cells: "  ".join(str(c).ljust(w) for c, w in zip(cells, widths)).rstrip()
    print(line(header))
    print(line(["-" * w for w in widths]))
    for row in rows:
        print(line(row))


def format_metric(value: object) -> str:
    """A metric for a table: four decimals, or '-' where it does not exist (regression accuracy)."""
    return f"{value:.4f}" if isinstance(value, (int, float)) else "-"
