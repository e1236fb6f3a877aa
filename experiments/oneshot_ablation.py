"""The ablations of "Pruning Neural Networks at Initialization: Why Are We Missing the Mark?" on
Fashion-MNIST LeNet-300-100, the table of docs/oneshot.md.

Every strategy (random, magnitude, snip10, grasp10, and synflow over 100 rounds, as the fork's own
scripts run it) at every --fractions, pruned at initialization, plain and with each of the paper's
ablations (--randomize_layerwise: the mask shuffled within each layer; --reinitialize: a fresh
initialization under the mask), for --replicates seeds. Training is the recipe's (SGD 0.1, batch
128) cut to --training_steps, because a full grid at 40 epochs does not fit a small CPU budget.
Runs are made through `submit --local` (the same grid expansion as `report`) in --workers processes,
each on one thread, then the tables are `report`'s. Runs are kept under --root: running it again
only reads them and reports.

    python experiments/oneshot_ablation.py [--root /tmp/oneshot] [--training_steps 10ep] [--replicates 3]
                                           [--fractions 0.5,0.95,0.99] [--workers 2] [--report_only]

The defaults are the table of docs/oneshot.md (135 branches and 3 trunks: about an hour on two
shared CPU cores).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import multiprocessing
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import open_prune  # noqa: E402

MODEL = "fashionmnist_lenet_300_100"
STRATEGIES = {  # strategy -> its own flags (the fork's scripts run SynFlow over 100 rounds)
    "random": [], "magnitude": [], "snip10": [], "grasp10": [], "synflow": ["--prune_iterations=100"],
}
VARIANTS = {"plain": [], "randomize_layerwise": ["--randomize_layerwise"], "reinitialize": ["--reinitialize"]}


def branch_argv(strategies: str, extra: list[str], args: argparse.Namespace, replicates: str) -> list[str]:
    return ["branch", "oneshot", f"--default_hparams={MODEL}", f"--training_steps={args.training_steps}",
            f"--strategy={strategies}", *extra, f"--prune_fraction={args.fractions}", f"--replicate={replicates}",
            f"--root={args.root}"]


def run_job(job: tuple[str, int, argparse.Namespace]) -> str:
    """Every variant and fraction of one strategy and replicate, in this worker process."""
    torch.set_num_threads(1)
    strategy, replicate, args = job
    started = time.time()
    for variant in VARIANTS.values():
        argv = ["submit", "--local", "--", *branch_argv(strategy, [*STRATEGIES[strategy], *variant], args,
                                                       str(replicate)), "--num_threads=1", "--quiet"]
        with contextlib.redirect_stdout(io.StringIO()):
            code = open_prune.main(argv)
        if code != 0:
            raise RuntimeError(f"python open_prune.py {' '.join(argv)} exited with {code}")
    return f"{strategy} replicate {replicate}: {time.time() - started:.1f} s"


def report(args: argparse.Namespace) -> int:
    """`report` of the plain grid (the ablations and --strategy=random are its control columns), one
    call per set of strategy flags; returns the first nonzero exit code."""
    groups: dict[tuple[str, ...], list[str]] = {}
    for strategy, extra in STRATEGIES.items():
        groups.setdefault(tuple(extra), []).append(strategy)
    replicates = f"1-{args.replicates}" if args.replicates > 1 else "1"
    for extra, strategies in groups.items():
        argv = ["report", *branch_argv(",".join(strategies), list(extra), args, replicates)]
        print(f"\n$ python open_prune.py {' '.join(argv)}", flush=True)
        code = open_prune.main(argv)
        if code != 0:
            return code
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default="/tmp/oneshot", help="where the runs live")
    parser.add_argument("--training_steps", default="10ep", help="training of the trunks and every branch")
    parser.add_argument("--replicates", type=int, default=3)
    parser.add_argument("--fractions", default="0.5,0.95,0.99", help="comma-separated --prune_fraction values")
    parser.add_argument("--workers", type=int, default=2, help="processes training at once")
    parser.add_argument("--report_only", action="store_true", help="train nothing: report what is there")
    args = parser.parse_args()
    if args.replicates < 1 or args.workers < 1:
        parser.error("--replicates and --workers must be at least 1")
    if not args.report_only:
        started = time.time()
        jobs = [(strategy, replicate, args) for replicate in range(1, args.replicates + 1) for strategy in STRATEGIES]
        with multiprocessing.get_context("spawn").Pool(args.workers) as pool:
            for line in pool.imap_unordered(run_job, jobs):
                print(f"{line} (total {time.time() - started:.0f} s)", flush=True)
    sys.exit(report(args))


if __name__ == "__main__":
    main()
