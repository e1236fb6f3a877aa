"""`open_prune.py report <command> <its flags>`: aggregate a grid of runs over replicates.

Takes the flags of the command it reports on, where any flag may list alternatives (a grid, see
foundations/grid.py) and `--replicates=1-5` names the replicates; finds each run by computing its
directory, never trains, and writes report.md, runs.csv (one row per run) and the figures under
--out (default <root>/reports/<command>-<digest of the flags>/).
"""

from __future__ import annotations

import hashlib
import json
import shlex
import textwrap
from typing import Optional

from foundations.errors import UserError
from foundations.tables import to_csv
from platforms.storage import write_text
from reports import options
from runs.target import Target, parse_target

PLACE_FLAGS = ("--root", "--dataset_root", "--device", "--quiet", "--num_workers", "--download", "--wait_for_lock",
               "--log_to")
SUMMARY = "aggregate a grid of runs over replicates into tables and plots (`report <command> <its flags>`)"

USAGE = """usage: python open_prune.py report train [flags] [--replicates=R] [--out=DIR]
       python open_prune.py report branch NAME [flags] [--replicates=R] [--out=DIR]

Reports on the runs that `train` / `branch NAME` with the same flags made: it never trains.
The flags are the command's own (`report branch NAME --help` lists them) and any of them may be
a grid: a comma list gives alternatives (--prune_fraction=0.5,0.9), an int range gives each value
(--replicate=1-5), a list-valued flag (--milestone_steps=80ep,120ep) is repeated to give
alternatives. `--replicates=R` is `--replicate=R`.

Writes, under --out (default <root>/reports/<command>-<digest>/):
  report.md                    per density (or level): mean ± std and a 95% Student-t interval of
                               the final and best test accuracy, and the controls' columns
  runs.csv                     one row per run (pandas.read_csv reads it)
  accuracy_vs_density.png/pdf  accuracy against density on a log axis, with 95% bands
  accuracy_vs_flops.png/pdf    with --flops_axis: the same against forward FLOPs per example
  accuracy_vs_iteration.png/pdf  test accuracy during training, one line per level (or density)
report.md and runs.csv carry each run's nonzero parameters, forward FLOPs (dense and with the
mask), theoretical speedup and training FLOPs (done.json's `compute`).
Missing and unfinished runs are listed with the command that makes them.

flags of report itself:
  --replicates R   the replicates to aggregate, e.g. 1-5 or 1,3,5 (default: the command's 1)
  --out DIR        where the files go; never inside a run
  --flops_axis     also plot accuracy against forward FLOPs per example (accuracy_vs_flops)
"""


def split_out(argv: list[str]) -> tuple[list[str], Optional[str]]:
    """argv without `--out`, and its value."""
    rest, out, i = [], None, 0
    while i < len(argv):
        if argv[i].startswith("--out="):
            out = argv[i].split("=", 1)[1]
        elif argv[i] == "--out":
            if i + 1 >= len(argv):
                raise UserError("--out needs a directory")
            out, i = argv[i + 1], i + 1
        else:
            rest.append(argv[i])
        i += 1
    return rest, out


def default_name(target: Target, argv: list[str]) -> str:
    digest = hashlib.sha256(json.dumps(argv).encode()).hexdigest()[:8]
    return f"{'-'.join(target.words)}-{digest}"


def figure_title(target: Target, argv: list[str]) -> str:
    """The command line without the flags that only say where things are, wrapped for a figure."""
    kept = [a for a in argv if not a.startswith(PLACE_FLAGS)]
    return "\n".join(textwrap.wrap(" ".join([*target.words, *kept]), 100))


def main(argv: list[str]) -> int:
    wants_help = any(a in ("-h", "--help") for a in argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        return 0
    target, rest = parse_target(argv, "report")
    if wants_help:
        print(USAGE)
        print(f"flags of {' '.join(target.words)}:\n")
        print(target.parser([a for a in rest if a not in ("-h", "--help")]).format_help())
        return 0
    from reports import report_plots  # matplotlib and scipy: loaded only when a report is made
    from reports.experiment import build
    from reports.report_tables import has_accuracy, has_own_results, markdown, summary_rows, tidy

    rest, out = split_out(rest)
    flops_axis = "--flops_axis" in rest
    rest = [a for a in rest if a != "--flops_axis"]
    experiment = build(target, rest)
    title = "report " + shlex.join([*target.words, *rest])
    caption = figure_title(target, rest)
    if not has_accuracy(experiment) and not has_own_results(experiment):
        raise UserError(f"report {' '.join(target.words)}: its finished runs hold no test accuracy and no result "
                        f"of their own to aggregate (their branch_done.json has no headline); nothing was written")
    rows = summary_rows(experiment)
    text = markdown(experiment, rows, title)
    directory = options.output_dir(out, experiment.root, default_name(target, rest))
    write_text(text, directory / "report.md")
    columns, tidy_rows = tidy(experiment)
    write_text(to_csv(columns, tidy_rows), directory / "runs.csv")
    written = [directory / "report.md", directory / "runs.csv"]
    if has_accuracy(experiment):  # a branch whose result is its own has its table, not accuracy plots
        written += report_plots.accuracy_vs_density(experiment, rows, directory / "accuracy_vs_density", caption)
        if flops_axis:
            written += report_plots.accuracy_vs_density(experiment, rows, directory / "accuracy_vs_flops", caption,
                                                        axis="flops")
        written += report_plots.accuracy_vs_iteration(experiment, directory / "accuracy_vs_iteration", caption)
    print(text)
    print("wrote " + ", ".join(str(path) for path in written))
    return 0
