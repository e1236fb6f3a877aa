"""A report's numbers: per series and density (or level), the replicates' final and best test
accuracy summarized (a language model's test perplexity instead, lower is better:
reports/metric.py); the same for each control; the tidy one-row-per-run table; and the
commands that would make the missing runs."""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from typing import Optional

from reports.compute_columns import COLUMNS, short
from reports.compute_columns import speedup as speedup_text
from reports.experiment import Experiment, Result
from reports.metric import ACCURACY, Metric, curve, lead
from reports.stats import Summary, summarize

COMPUTE_HEAD = ["nonzero params", "forward FLOPs", "speedup", "train FLOPs"]  # means over the replicates
COMPUTE_KEYS = ["nonzero", "flops", "speedup", "training_flops"]


@dataclass
class Row:
    series: str
    x: Optional[float]
    density: Optional[float]
    final: Summary
    best: Summary
    controls: dict[str, Summary]
    compute: dict[str, Optional[float]] = field(default_factory=dict)  # means: nonzero, flops, speedup, ...
    control_flops: dict[str, Optional[float]] = field(default_factory=dict)  # each control's mean forward FLOPs


def _done(results: list[Result]) -> list[Result]:
    return [r for r in results if r.state.status == "done"]


def _mean(values: list) -> Optional[float]:
    found = [v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
    return sum(found) / len(found) if found else None


def mean_compute(results: list[Result]) -> dict[str, Optional[float]]:
    """The mean of each compute column (compute_columns.COLUMNS) over finished results."""
    return {column: _mean([r.state.compute.get(key) for r in results]) for column, key in COLUMNS.items()}


def lead_metric(experiment: Experiment) -> Metric:
    """Test perplexity when the experiment's finished runs are language models, else test accuracy
    (also for a stand-in experiment that carries no results)."""
    return lead(r.state for r in _done(getattr(experiment, "results", [])))


def best_of(result: Result, metric: Metric) -> Optional[float]:
    """The best value of the metric during the result's training (accuracy: the highest, as
    experiment.py already found; perplexity: the lowest, from its metrics.jsonl)."""
    if metric is ACCURACY:
        return result.best
    return metric.best(value for _, value in curve(result.path, result.level, metric))


def summary_rows(experiment: Experiment) -> list[Row]:
    rows = []
    metric = lead_metric(experiment)
    for label in experiment.series():
        for x in experiment.xs(label):
            done = _done(experiment.of("main", label, x))
            densities = [r.state.density for r in done if r.state.density is not None]
            controls = {role: _done(experiment.of(role, label, x)) for role in experiment.roles[1:]}
            rows.append(Row(label, x, sum(densities) / len(densities) if densities else None,
                            summarize([metric.of(r.state) for r in done]),
                            summarize([best_of(r, metric) for r in done]),
                            {role: summarize([metric.of(r.state) for r in found])
                             for role, found in controls.items()},
                            mean_compute(done),
                            {role: mean_compute(found)["flops"] for role, found in controls.items()}))
    return rows


def compute_cells(compute: dict[str, Optional[float]]) -> list[str]:
    return [speedup_text(compute.get(key)) if key == "speedup" else short(compute.get(key)) for key in COMPUTE_KEYS]


def x_text(experiment: Experiment, x: Optional[float]) -> str:
    if x is None:
        return "-"
    return str(int(x)) if experiment.x_label == "level" else f"{x:g}"


def markdown(experiment: Experiment, rows: list[Row], title: str) -> str:
    """The report as Markdown: one table per series, then what is missing."""
    found = [r for r in experiment.results if r.state.status != "missing"]
    lines = [f"# {title}", "",
             f"{len(_done(experiment.results))} finished results of {len(experiment.results)} expected "
             f"({len(found)} found); mean ± std over replicates, 95% Student-t interval of the mean.", ""]
    metric = lead_metric(experiment)
    head = ([experiment.x_label] if experiment.x_label else []) + [
        "density", "n", metric.header, "95% interval", f"best {metric.words}", "best: 95% interval",
        *COMPUTE_HEAD, *experiment.roles[1:]]
    accuracy = has_accuracy(experiment)
    for label in experiment.series():
        lines += [f"## {label}", ""]
        lines += headline_table(experiment, label)
        lines += results_tables(experiment, label)
        if not accuracy:  # a branch whose result is its own (a barrier, an orderedness): no accuracy table
            continue
        lines += ["| " + " | ".join(head) + " |", "|" + "---:|" * len(head)]
        lines += reference_row(experiment, label, len(head))
        for row in (r for r in rows if r.series == label):
            cells = ([x_text(experiment, row.x)] if experiment.x_label else []) + [
                "-" if row.density is None else f"{row.density:.4f}", str(row.final.n),
                row.final.text(), row.final.interval(), row.best.text(), row.best.interval(),
                *compute_cells(row.compute), *(s.cell() for s in row.controls.values())]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    todo = missing_commands(experiment)
    if todo:
        lines += ["## Missing or unfinished", ""]
        lines += [f"- `{command}` ({what})" for command, what in todo]
        lines.append("")
    return "\n".join(lines)


def reference_row(experiment: Experiment, series: str, width: int) -> list[str]:
    """'dense (trunk)': the final test accuracy (or perplexity) of the trunks the series pruned, the
    reference a pruned network is measured against (none for branches whose level 0 is the trunk)."""
    trunks = _done(experiment.trunks_of(series))
    if not trunks or not experiment.x_label:
        return []
    metric = lead_metric(experiment)
    final = summarize([metric.of(r.state) for r in trunks])
    best = summarize([best_of(r, metric) for r in trunks])
    cells = ["dense (trunk)", "1.0000", str(final.n), final.text(), final.interval(), best.text(), best.interval(),
             *compute_cells(mean_compute(trunks))]
    return ["| " + " | ".join(cells + ["-"] * (width - len(cells))) + " |"]


def has_accuracy(experiment: Experiment) -> bool:
    """Whether any finished run has a test accuracy of its own (a training run's)."""
    return any(r.state.test_accuracy is not None for r in _done(experiment.results))


def headline_labels(experiment: Experiment) -> list[str]:
    """The labels of the branch's own results (barrier, orderedness, ...), in their order."""
    return list(dict.fromkeys(label for r in _done(experiment.results) for label in r.state.headline))


def has_own_results(experiment: Experiment) -> bool:
    """Whether a finished run holds a result of its branch's own: a headline or a results table."""
    return any(r.state.headline or r.state.results for r in _done(experiment.results))


def headline_table(experiment: Experiment, series: str) -> list[str]:
    """A Markdown table of the branch's own results of one series, summarized over replicates like
    the accuracy: one row per result, one column per density (or level) and control."""
    labels = headline_labels(experiment)
    if not labels:
        return []
    xs = experiment.xs(series)
    columns = [(role, x) for x in xs for role in experiment.roles
               if _done(experiment.of(role, series, x))]
    names = [" ".join(filter(None, [x_text(experiment, x) if experiment.x_label and x is not None else "",
                                    "" if role == "main" else role])) or "over replicates" for role, x in columns]
    lines = ["| result | " + " | ".join(names) + " |", "|---|" + "---:|" * len(columns)]
    for label in labels:
        cells = []
        for role, x in columns:
            summary = summarize([r.state.headline.get(label) for r in _done(experiment.of(role, series, x))])
            cells.append(summary.cell())
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return [*lines, ""]


def results_tables(experiment: Experiment, series: str) -> list[str]:
    """Markdown tables of a branch's own results table (`results` in its branch_done.json: LEGCNet's
    networks, SpaM's cells), each row's metrics summarized over the replicates, one table per
    density (or level)."""
    lines = []
    for x in experiment.xs(series):
        done = _done(experiment.of("main", series, x))
        rows = list(dict.fromkeys(row for r in done for row in r.state.results))
        if not rows:
            continue
        metrics = list(dict.fromkeys(m for r in done for row in rows for m in r.state.results.get(row, {})))
        where = f" at {experiment.x_label} {x_text(experiment, x)}" if experiment.x_label and x is not None else ""
        lines += [f"{len(done)} replicate(s){where}:", "", "| | " + " | ".join(metrics) + " |",
                  "|---|" + "---:|" * len(metrics)]
        for row in rows:
            cells = []
            for metric in metrics:
                summary = summarize([r.state.results.get(row, {}).get(metric) for r in done])
                cells.append(summary.cell())
            lines.append(f"| {row} | " + " | ".join(cells) + " |")
        lines.append("")
    return lines


def missing_commands(experiment: Experiment) -> list[tuple[str, str]]:
    """(command line, what is wrong) for every run that is not done, one line per command."""
    found: dict[str, dict[str, list[str]]] = {}
    for result in experiment.results:
        if result.state.status == "done":
            continue
        what = result.state.status + (f" ({result.state.note})" if result.state.note else "")
        command = "python open_prune.py " + shlex.join(result.command)
        levels = found.setdefault(command, {}).setdefault(what, [])
        if result.level is not None:
            levels.append(str(result.level))
    return [(command, "; ".join(what + (f": level{'s' * (len(levels) > 1)} {', '.join(levels)}" if levels else "")
                                for what, levels in whats.items()))
            for command, whats in found.items()]


def tidy(experiment: Experiment) -> tuple[list[str], list[dict]]:
    """One row per run found (main runs first; a control that is also a main run is listed once);
    language models add their final and best test perplexity after the accuracy columns."""
    metric = lead_metric(experiment)
    extra = [] if metric is ACCURACY else [f"final_{metric.key}", f"best_{metric.key}"]
    columns = ["role", "series", *experiment.varying]
    if experiment.x_label and experiment.x_label not in experiment.varying:
        columns.append(experiment.x_label)
    columns += ["replicate", "density", *COLUMNS, "final_test_accuracy", "best_test_accuracy", *extra,
                *headline_labels(experiment), "status", "path"]
    rows, seen = [], set()
    for r in experiment.results:
        if r.state.status == "missing" or r.path in seen:
            continue
        seen.add(r.path)
        x = {experiment.x_label: x_text(experiment, r.x)} if experiment.x_label else {}
        rows.append({"role": r.role, "series": r.series, **r.config, **x, "replicate": r.replicate,
                     "density": r.state.density,
                     **{column: r.state.compute.get(key) for column, key in COLUMNS.items()},
                     "final_test_accuracy": r.state.test_accuracy,
                     "best_test_accuracy": r.best,
                     **({} if metric is ACCURACY else {extra[0]: metric.of(r.state), extra[1]: best_of(r, metric)}),
                     **r.state.headline, "status": r.state.status,
                     "path": str(r.path)})
    return columns, rows
