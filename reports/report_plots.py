"""A report's figures: test accuracy against density (log axis, 95% bands), optionally against
forward FLOPs per example instead (`report --flops_axis`), and test accuracy against the training
iteration for each level (or density), averaged over replicates. Language models plot their test
perplexity instead (the y axis says lower is better), in perplexity_vs_*.png/pdf files."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Optional

import numpy as np
from matplotlib.ticker import FuncFormatter

from reports.compute_columns import short
from reports.experiment import Experiment
from reports.figures import plt, save
from reports.metric import ACCURACY, Metric, curve
from reports.report_tables import Row, lead_metric, x_text

STYLES = ["-", "--", ":", "-.", (0, (5, 1)), (0, (1, 1))]


AXES = {"density": "density (fraction of prunable weights kept, log scale)",
        "flops": "forward FLOPs per example with the mask (log scale)"}


def _stem(stem: Path, metric: Metric) -> Path:
    """accuracy_vs_density -> perplexity_vs_density for a language model's figures."""
    return stem if metric is ACCURACY else stem.with_name(stem.name.replace("accuracy", metric.words.split()[-1]))


def _x(row: Row, role: str, axis: str) -> Optional[float]:
    """Where a row's point for `role` lies on the `axis` ("density" or "flops")."""
    if axis == "density":
        return row.density
    return row.compute.get("flops") if role == "main" else row.control_flops.get(role)


def accuracy_vs_density(experiment: Experiment, rows: list[Row], stem: Path, title: str,
                        axis: str = "density") -> list[Path]:
    """One line per series and role; nothing when every result has the same density (a trunk grid)
    or, on the FLOPs axis, the same FLOPs (or none: runs written before FLOPs were counted)."""
    xs = {round(v, 6) if axis == "density" else float(f"{v:.6g}")
          for r in rows for role in experiment.roles if (v := _x(r, role, axis)) is not None}
    if len(xs) < 2:
        return []
    metric = lead_metric(experiment)
    fig, ax = plt.subplots(figsize=(7, 4.5), layout="constrained")  # room for the title above the axes
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, label in enumerate(experiment.series()):
        mine = [r for r in rows if r.series == label]
        for j, role in enumerate(experiment.roles):
            points = [(_x(r, role, axis), r.final if role == "main" else r.controls[role]) for r in mine]
            points = [(d, s) for d, s in points if d is not None and s.n > 0]
            if not points:
                continue
            x = np.array([d for d, _ in points])
            colour = colours[(i * len(experiment.roles) + j) % len(colours)]
            name = label if role == "main" else f"{label}: {role}"
            ax.plot(x, [s.mean for _, s in points], linestyle=STYLES[j % len(STYLES)], marker="o", ms=3,
                    color=colour, label=name)
            bounds = (0, 1) if metric.bounded else (1, None)  # accuracy in [0, 1], perplexity >= 1; the table
            low = np.clip([s.low for _, s in points], *bounds)  # is not clipped
            high = np.clip([s.high for _, s in points], *bounds)
            band = np.isfinite(low) & np.isfinite(high)
            if band.any():
                ax.fill_between(x[band], low[band], high[band], color=colour, alpha=0.18, lw=0)
    ax.set_xscale("log")
    ax.invert_xaxis()  # dense on the left, sparser to the right
    plain = FuncFormatter(lambda value, _: f"{value:.3g}" if axis == "density" else short(value))
    ax.xaxis.set_major_formatter(plain)
    ax.xaxis.set_minor_formatter(plain)
    ax.tick_params(axis="x", which="minor", labelsize=7)
    ax.set_xlabel(AXES[axis])
    ax.set_ylabel(f"final {metric.header}")
    ax.set_title(title, fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    return save(fig, _stem(stem, metric))


def accuracy_vs_iteration(experiment: Experiment, stem: Path, title: str) -> list[Path]:
    """One panel per series, one line per level (or density), the mean over the replicates."""
    labels = experiment.series()
    metric = lead_metric(experiment)
    columns = min(3, len(labels))
    panels = math.ceil(len(labels) / columns)
    fig, axes = plt.subplots(panels, columns, figsize=(5 * columns, 3.6 * panels), squeeze=False,
                             layout="constrained")  # the figure's title above the panels' titles, not over them
    for ax, label in zip(axes.flat, labels):
        xs = experiment.xs(label)
        cmap = plt.get_cmap("viridis")
        for k, x in enumerate(xs):
            curves: dict[int, list[float]] = {}
            for result in experiment.of("main", label, x):
                points = result.curve if metric is ACCURACY else curve(result.path, result.level, metric)
                for iteration, value in points:
                    curves.setdefault(iteration, []).append(value)
            if not curves:
                continue
            iterations = sorted(curves)
            colour = cmap(k / max(1, len(xs) - 1))
            name = f"{experiment.x_label} {x_text(experiment, x)}" if experiment.x_label else "runs"
            ax.plot(iterations, [np.mean(curves[i]) for i in iterations], color=colour, marker=".", ms=3, label=name)
        ax.set_title(label, fontsize=9)
        ax.set_xlabel("iteration")
        ax.set_ylabel(metric.header)
        ax.grid(True, alpha=0.3)
        if ax.get_lines():
            ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(labels):]:
        ax.axis("off")
    fig.suptitle(title, fontsize=9)
    return save(fig, _stem(stem, metric))
