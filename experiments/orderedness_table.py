"""Table 1 of "Pruning Increases Orderedness in Weight-Tied Recurrent Computation", with its controls.

Every per-step rule on both tasks (xor_complete_5, sine_complete_8, the paper's recipes) for
--replicates seeds: the trunks (the "no pruning" rows) and one `branch orderedness` run each,
through the CLI in --workers processes (each on one thread), then one table per task: train MSE
(on the whole training set: the paper has no held-out data), density, orderedness start -> final,
each null and the trained block's Δ over it, all mean ± std over replicates, with the two-sided
Wilcoxon signed-rank p of trained vs null, paired by replicate. The constraints (tril_*) get
their own section: they optimize the metric directly. Runs are kept under --root, so running it
again only reads them and prints the tables.

    python experiments/orderedness_table.py [--root DIR] [--replicates 10] [--workers 2] [--markdown]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import multiprocessing
import sys
import time
from pathlib import Path

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
RULES = {  # the settings of the table: the examples, the paper code's default damping
    "random": ["--prune_fraction=0.5"],
    "threshold": [],
    "topk": ["--keep=0.5"],
    "dyn_topk": ["--keep=0.5"],
    "tril_damp": ["--damping=0.9"],
    "dyn_tril_damp": ["--damping=0.9"],
    "tril_prune": [],
}
NULLS = {"shuffled": "shuffled (a)", "random": "random pruned (b)", "init": "init pruned (c)"}


def argv(task: str, rule: str, replicate: int, root: str) -> list[str]:
    return ["branch", "orderedness", f"--default_hparams={TASKS[task]}", f"--rule={rule}", *RULES[rule],
            f"--replicate={replicate}", f"--root={root}", "--quiet"]


def run_replicate(job: tuple[str, int, str]) -> str:
    """Every rule for one (task, replicate), in this worker process; returns a progress line."""
    torch.set_num_threads(1)
    task, replicate, root = job
    started = time.time()
    for rule in RULES:
        with contextlib.redirect_stdout(io.StringIO()):
            code = open_prune.main(argv(task, rule, replicate, root))
        if code != 0:
            raise RuntimeError(f"{' '.join(argv(task, rule, replicate, root))} exited with {code}")
    return f"{task} replicate {replicate}: {time.time() - started:.1f} s"


def records(task: str, rule: str, replicates: int, root: str) -> list[dict]:
    found = []
    for replicate in range(1, replicates + 1):
        branch, _ = branch_target(orderedness.NAME).parse(argv(task, rule, replicate, root)[2:])
        found.append(read_json(branch.dir / orderedness.RESULTS))
    return found


def spread(values: list[float], digits: int = 3) -> str:
    values = np.asarray(values, dtype=float)
    std = values.std(ddof=1) if values.size > 1 else 0.0
    return f"{values.mean():.{digits}f} ± {std:.{digits}f}"


def row(name: str, runs: list[dict]) -> list[str]:
    finals = [run["final"]["orderedness"] for run in runs]
    cells = [name, spread([run["train_mse"] for run in runs], 4), spread([run["final"]["density"] for run in runs]),
             f"{spread([run['start']['orderedness'] for run in runs])} -> {spread(finals)}"]
    for key in NULLS:
        nulls = [run["nulls"][key]["mean"] for run in runs]
        test = paired_test(finals, nulls)
        cells += [spread(nulls), f"{test['mean']:+.3f} ± {test['std']:.3f}", f"{test['p']:.3g}"]
    return cells


def label(rule: str) -> str:
    return " ".join([rule, *(setting.lstrip("-") for setting in RULES[rule])])


def print_task(task: str, replicates: int, root: str, markdown: bool) -> None:
    runs = {rule: records(task, rule, replicates, root) for rule in RULES}
    first = next(iter(runs.values()))
    header = ["rule", "train MSE", "density", "orderedness start -> final"]
    for name in NULLS.values():
        header += [name, "Δ", "p"]
    constraints = set(rules.constraint_names())
    emergent = [row("no pruning (trunk)", [run["no_pruning"] for run in first])]
    emergent += [row(label(rule), runs[rule]) for rule in RULES if rule not in constraints]
    constrained = [row(label(rule), runs[rule]) for rule in RULES if rule in constraints]
    hidden, exact = first[0]["hidden"], first[0]["exact"]
    print(f"\n{task}: {TASKS[task]} ({hidden} hidden units, {'exact' if exact else 'heuristic'} orderedness), "
          f"{replicates} replicates, mean ± std; p: two-sided Wilcoxon signed-rank, trained vs null, "
          f"paired by replicate")
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default=str(Path.home() / "open_prune_data"), help="where the runs live")
    parser.add_argument("--replicates", type=int, default=10)
    parser.add_argument("--workers", type=int, default=2, help="processes training at once")
    parser.add_argument("--tasks", default=",".join(TASKS), help="comma-separated: xor, sine")
    parser.add_argument("--markdown", action="store_true", help="print markdown tables")
    args = parser.parse_args()
    tasks = [task.strip() for task in args.tasks.split(",") if task.strip()]
    unknown = [task for task in tasks if task not in TASKS]
    if unknown or args.replicates < 1 or args.workers < 1:
        parser.error(f"--tasks takes {', '.join(TASKS)}; --replicates and --workers at least 1")
    started = time.time()
    jobs = [(task, replicate, args.root) for task in tasks for replicate in range(1, args.replicates + 1)]
    with multiprocessing.get_context("spawn").Pool(args.workers) as pool:
        for line in pool.imap_unordered(run_replicate, jobs):
            print(line, file=sys.stderr)
    for task in tasks:
        print_task(task, args.replicates, args.root, args.markdown)
    print(f"\n{len(jobs) * len(RULES)} branch runs and {len(jobs)} trunks in {time.time() - started:.0f} s "
          f"with {args.workers} workers")


if __name__ == "__main__":
    main()
