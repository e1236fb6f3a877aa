"""The runs under a root, and a report's table, as pandas DataFrames."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Sequence, Union

from reports import listing
from reports.rundirs import check_root, find_runs


def _pandas():
    try:
        import pandas
    except ImportError:
        from foundations.errors import UserError

        raise UserError("the Python API needs pandas: pip install pandas (or pip install -e \".[notebook]\")") from None
    return pandas


def runs(root: Union[str, Path]):
    """One row per trunk, per single-run branch and per level of a level branch, as `runs
    --format=csv` lists them (kind, level, replicate, status, step, accuracy, a language model's
    test_perplexity, density, the compute columns, where it ran), with every hparam by field name
    and `bundle.field`, and `path`, the absolute run dir (for `open_run`)."""
    root = check_root(Path(root).expanduser())
    rows = listing.rows(find_runs(root))
    fields = listing.every_field(rows)
    dotted = list(dict.fromkeys(name for row in rows for name in row["_run"].fields() if "." in name))
    columns = (listing.LEADING + fields + listing.trailing(rows, every=True) + listing.COMPUTE
               + ["hash", "parent_hash", "note", *listing.ENVIRONMENT] + dotted + ["path"])
    records = [{**{c: row.get(c) for c in columns if c != "path"}, "path": str(root / row["run"])} for row in rows]
    return _pandas().DataFrame(records, columns=columns)


def report(command: Union[str, Sequence[str]], root: Union[str, Path, None] = None, tidy: bool = False):
    """`report <command>`'s table: one row per series and density (or level) with the replicates'
    n, mean, std and 95% interval of the final and best test accuracy (language models: test
    perplexity, the columns named test_perplexity, best_test_perplexity), each control's mean and the
    mean compute columns; `tidy=True` gives runs.csv's one row per run instead. `command` is what
    follows `report` on the command line (a string or a list), grid flags included."""
    from reports.experiment import build
    from reports.report_tables import lead_metric, summary_rows
    from reports.report_tables import tidy as tidy_rows
    from runs.target import parse_target

    argv = shlex.split(command) if isinstance(command, str) else list(command)
    if root is not None:
        argv.append(f"--root={Path(root).expanduser()}")
    target, rest = parse_target(argv, "report")
    experiment = build(target, rest)
    pandas = _pandas()
    key = lead_metric(experiment).key
    if tidy:
        columns, rows = tidy_rows(experiment)
        return pandas.DataFrame(rows, columns=columns)
    records = []
    for row in summary_rows(experiment):
        x = int(row.x) if experiment.x_label == "level" and row.x is not None else row.x
        record = {"series": row.series, experiment.x_label or "x": x, "density": row.density,
                  "n": row.final.n, key: row.final.mean, "std": row.final.std,
                  "low": row.final.low, "high": row.final.high, f"best_{key}": row.best.mean,
                  "best_std": row.best.std, **row.compute}
        record.update({f"{role}: {key}": summary.mean for role, summary in row.controls.items()})
        records.append(record)
    return pandas.DataFrame(records)
