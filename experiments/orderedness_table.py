"""The orderedness branch's table (Song, "Pruning Increases Orderedness in Weight-Tied Recurrent
Computation", MOSS @ ICML 2025, arXiv 2507.14747), at the authors' settings, with its controls.

Every per-step rule on both tasks (xor_complete_5, sine_complete_8: the recipes of the authors'
code) for --replicates seeds: the trunks (the "no pruning" rows) and one `branch orderedness` run
each, through the CLI in --workers processes (each on one thread), then one table per task: train
MSE (on the whole training set: the paper has no held-out data), density, orderedness start ->
final, Δ = final - start (the quantity the authors' table notebook reports), the same Δ of the
untrained control (null (c) - start: the rule alone on the run's own initial weights, the
authors' "none" task), each null and the trained block's Δ over it, all mean ± std over
replicates, with the two-sided Wilcoxon signed-rank p of trained vs null, paired by replicate.
The constraints (tril_*) get their own section: they optimize the metric directly. Runs are kept
under --root, so running it again only reads them and prints the tables.

--settings=authors (the default) takes each rule's setting from the authors' code (SETTINGS names
the file of each); --settings=uniform is this table's earlier choice, keep 0.5 for topk on sine too.
The paper's own Table 1 text was not reachable when this was written: see docs/orderedness.md.

--stack trains each (task, rule)'s replicates as one stack (`submit --local --stack`, docs/stacking.md;
the trunks of a task stack too), one task per worker process; its results equal the unstacked runs'
to float tolerance (rtol 1e-4), not bitwise, and runs already under --root are only read.

    python experiments/orderedness_table.py [--root DIR] [--replicates 10] [--workers 2]
        [--tasks xor,sine] [--settings authors|uniform] [--stack] [--markdown]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import multiprocessing
import sys
import time
from pathlib import Path
from typing import Optional

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import open_prune  # noqa: E402
from branches.orderedness import orderedness  # noqa: E402
from branches.orderedness.nulls import paired_test  # noqa: E402
from foundations.tables import print_table  # noqa: E402
from platforms.storage import read_json  # noqa: E402
from pruning import rules  # noqa: E402
from runs.target import branch_target  # noqa: E402

TASKS = {"xor": "xor_complete_5", "sine": "sine_complete_8"}
# Each rule's flags on each task. authors: the authors' code, PerceptronV/orderedness-by-pruning
# (fe09078, "Code for paper") unless named: random p=0.5 (notebooks/table.ipynb; their code prunes
# p), threshold tau=None (pruning.py's default: frozen at the first step), dyn_topk k=0.5 on both
# tasks (notebooks/demo.ipynb), damping f=0.9 (pruning.py's TrilDamp/DynamicTrilDamp default);
# topk k=0.5 on xor and 0.2 on sine from the earlier PerceptronV/induced-mlp (d06b480,
# notebooks/xor.ipynb, notebooks/sine.ipynb): the newer code never sets k (its default keeps all).
# uniform: this table before the authors' settings were looked up (topk keep 0.5 on both tasks).
RULES = ("random", "threshold", "topk", "dyn_topk", "tril_damp", "dyn_tril_damp", "tril_prune")
_COMMON = {"random": ["--prune_fraction=0.5"], "threshold": [], "dyn_topk": ["--keep=0.5"],
           "tril_damp": ["--damping=0.9"], "dyn_tril_damp": ["--damping=0.9"], "tril_prune": []}
SETTINGS = {
    "authors": {task: {**_COMMON, "topk": [f"--keep={keep}"]} for task, keep in (("xor", 0.5), ("sine", 0.2))},
    "uniform": {task: {**_COMMON, "topk": ["--keep=0.5"]} for task in TASKS},
}
NULLS = {"shuffled": "shuffled (a)", "random": "random pruned (b)", "init": "init pruned (c)"}


def flags(task: str, rule: str, settings: str = "authors") -> list[str]:
    """The rule's settings on this task: SETTINGS[settings][task][rule]."""
    return list(SETTINGS[settings][task][rule])


def argv(task: str, rule: str, replicate: int | str, root: str, settings: str = "authors") -> list[str]:
    return ["branch", "orderedness", f"--default_hparams={TASKS[task]}", f"--rule={rule}",
            *flags(task, rule, settings), f"--replicate={replicate}", f"--root={root}", "--quiet"]


def run_replicate(job: tuple[str, int, str, str]) -> str:
    """Every rule for one (task, replicate), in this worker process; returns a progress line."""
    torch.set_num_threads(1)
    task, replicate, root, settings = job
    started = time.time()
    for rule in RULES:
        command = argv(task, rule, replicate, root, settings)
        with contextlib.redirect_stdout(io.StringIO()):
            code = open_prune.main(command)
        if code != 0:
            raise RuntimeError(f"{' '.join(command)} exited with {code}")
    return f"{task} replicate {replicate}: {time.time() - started:.1f} s"


def run_task_stacked(job: tuple[str, int, str, str]) -> str:
    """Every rule for one task, each rule's replicates as one stacked grid (the first grid trains
    the task's trunks, stacked too), in this worker process; returns a progress line."""
    torch.set_num_threads(1)
    task, replicates, root, settings = job
    started = time.time()
    for rule in RULES:
        command = ["submit", "--local", "--stack", "--", *argv(task, rule, f"1-{replicates}", root, settings)]
        with contextlib.redirect_stdout(io.StringIO()):
            code = open_prune.main(command)
        if code != 0:
            raise RuntimeError(f"{' '.join(command)} exited with {code}")
    return f"{task}, {replicates} replicates stacked: {time.time() - started:.1f} s"


def records(task: str, rule: str, replicates: int, root: str, settings: str = "authors") -> list[dict]:
    found = []
    for replicate in range(1, replicates + 1):
        branch, _ = branch_target(orderedness.NAME).parse(argv(task, rule, replicate, root, settings)[2:])
        found.append(read_json(branch.dir / orderedness.RESULTS))
    return found


def spread(values: list[float], digits: int = 3, signed: bool = False) -> str:
    values = np.asarray(values, dtype=float)
    std = values.std(ddof=1) if values.size > 1 else 0.0
    return f"{values.mean():{'+' if signed else ''}.{digits}f} ± {std:.{digits}f}"


def changes(run: dict) -> tuple[float, float]:
    """Δ = final - start of the trained block, and of the untrained control: null (c), the rule
    alone on the run's own initial weights, minus the same start."""
    start = run["start"]["orderedness"]
    return run["final"]["orderedness"] - start, run["nulls"]["init"]["mean"] - start


def row(name: str, runs: list[dict]) -> list[str]:
    finals = [run["final"]["orderedness"] for run in runs]
    trained, untrained = zip(*(changes(run) for run in runs))
    cells = [name, spread([run["train_mse"] for run in runs], 4), spread([run["final"]["density"] for run in runs]),
             f"{spread([run['start']['orderedness'] for run in runs])} -> {spread(finals)}",
             spread(trained, signed=True), spread(untrained, signed=True)]
    for key in NULLS:
        nulls = [run["nulls"][key]["mean"] for run in runs]
        test = paired_test(finals, nulls)
        cells += [spread(nulls), f"{test['mean']:+.3f} ± {test['std']:.3f}", f"{test['p']:.3g}"]
    return cells


def label(task: str, rule: str, settings: str = "authors") -> str:
    return " ".join([rule, *(setting.lstrip("-") for setting in flags(task, rule, settings))])


def print_task(task: str, replicates: int, root: str, markdown: bool, settings: str = "authors") -> None:
    runs = {rule: records(task, rule, replicates, root, settings) for rule in RULES}
    first = next(iter(runs.values()))
    header = ["rule", "train MSE", "density", "orderedness start -> final", "Δ final - start",
              "Δ untrained (c) - start"]
    for name in NULLS.values():
        header += [name, "Δ", "p"]
    constraints = set(rules.constraint_names())
    emergent = [row("no pruning (trunk)", [run["no_pruning"] for run in first])]
    emergent += [row(label(task, rule, settings), runs[rule]) for rule in RULES if rule not in constraints]
    constrained = [row(label(task, rule, settings), runs[rule]) for rule in RULES if rule in constraints]
    hidden, exact = first[0]["hidden"], first[0]["exact"]
    print(f"\n{task}: {TASKS[task]} ({hidden} hidden units, {'exact' if exact else 'heuristic'} orderedness), "
          f"{settings} settings, {replicates} replicates, mean ± std (ddof 1); p: two-sided Wilcoxon signed-rank, "
          f"trained vs null, paired by replicate")
    show(header, emergent, markdown)
    print(f"\n{task}, constraints (they remove lower-triangle weight, optimizing the metric itself: "
          f"not comparable with the rules above)")
    show(header, constrained, markdown)


def show(header: list[str], rows: list[list[str]], markdown: bool) -> None:
    if not markdown:
        print_table(header, rows)
        return
    for line in (header, ["---"] * len(header), *rows):
        print("| " + " | ".join(line) + " |")


def parse_args(args: Optional[list[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default=str(Path.home() / "open_prune_data"), help="where the runs live")
    parser.add_argument("--replicates", type=int, default=10)
    parser.add_argument("--workers", type=int, default=2, help="processes training at once")
    parser.add_argument("--tasks", default=",".join(TASKS), help="comma-separated: xor, sine")
    parser.add_argument("--settings", default="authors", choices=list(SETTINGS),
                        help="each rule's settings: authors (the authors' code; default) or uniform (keep 0.5 "
                             "for topk on both tasks, this table's earlier choice)")
    parser.add_argument("--stack", action="store_true",
                        help="train each rule's replicates as one stack (submit --local --stack), one task per worker")
    parser.add_argument("--markdown", action="store_true", help="print markdown tables")
    parsed = parser.parse_args(args)
    parsed.tasks = [task.strip() for task in parsed.tasks.split(",") if task.strip()]
    unknown = [task for task in parsed.tasks if task not in TASKS]
    if unknown or not parsed.tasks or parsed.replicates < 1 or parsed.workers < 1:
        parser.error(f"--tasks takes {', '.join(TASKS)}; --replicates and --workers at least 1")
    return parsed


def main() -> None:
    args = parse_args()
    started = time.time()
    if args.stack:
        work, worker = [(task, args.replicates, args.root, args.settings) for task in args.tasks], run_task_stacked
    else:
        work = [(task, replicate, args.root, args.settings) for task in args.tasks
                for replicate in range(1, args.replicates + 1)]
        worker = run_replicate
    processes = min(args.workers, len(work))
    with multiprocessing.get_context("spawn").Pool(processes) as pool:
        for line in pool.imap_unordered(worker, work):
            print(line, file=sys.stderr)
        pool.close()
        pool.join()  # the workers exit on their own: terminate(), at the block's end, kills them mid-cleanup
    trained = time.time() - started
    for task in args.tasks:
        print_task(task, args.replicates, args.root, args.markdown, args.settings)
    runs = len(args.tasks) * args.replicates
    print(f"\n{runs * len(RULES)} branch runs and {runs} trunks in {time.time() - started:.0f} s "
          f"({trained:.0f} s training and analysis) with {processes} workers{', stacked' if args.stack else ''}")


if __name__ == "__main__":
    main()
