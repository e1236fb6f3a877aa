"""SpaM training vs MAP training of the same model on the same data, through open_prune's loop.

Fashion-MNIST, LeNet-300-100, SGD 0.1, batch 128, --epochs (default 5) epochs from the same
initialization and data order:
  MAP   weight decay 1/N (the prior of precision 1 the paper's MAP trains under)
  SpaM  the prior's penalty instead (unit prior), and a marginal-likelihood update every 5 epochs:
        the diagonal GGN (--curvature) over the 60000 training images, then 100 Adam steps on the
        log precisions
Both run in this process, alternately after a warm-up, each in a fresh temporary run dir. Prints
the time of each, of SpaM's updates alone (from a second, timed copy of the hook), and last
ratio=<SpaM time / MAP time> (goal <= 1.20).

    python benchmarks/spam_overhead.py [--epochs 5] [--threads 1] [--device cpu] [--clock cpu]

--clock cpu times this process's CPU seconds instead of wall-clock seconds: with one thread on a
machine shared with other work it is the steadier measure (the wall clock counts the waits).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.fashion_lenet import TRAINING, device_from_argv, lenet, loaders, platform  # noqa: E402
from benchmarks.timing import timed  # noqa: E402
from branches.spam.prior_training import SpamHook, SpamHparams  # noqa: E402
from training.loop import train  # noqa: E402

CLOCK = [time.perf_counter]  # or time.process_time (--clock cpu)


def clocked(fn) -> float:
    """Seconds of one call of fn on the chosen clock."""
    start = CLOCK[0]()
    fn()
    return CLOCK[0]() - start


class TimedSpamHook(SpamHook):
    """SpamHook that adds up the seconds its marginal-likelihood updates take."""

    seconds = 0.0

    def update(self, state, epoch):
        start = CLOCK[0]()
        value = super().update(state, epoch)
        TimedSpamHook.seconds += CLOCK[0]() - start
        return value


def run(spam: bool, epochs: int, device: torch.device, data, curvature: str = "diag_ggn") -> float:
    train_loader, test_loader = data
    n = train_loader.num_examples
    h = TRAINING.replace(training_steps=f"{epochs}ep", weight_decay=None if spam else 1.0 / n,
                         eval_every=f"{epochs}ep")
    model = lenet(device)
    hooks = [TimedSpamHook(SpamHparams(prior="unit", curvature=curvature, marglik_frequency=5), model,
                           "classification")] if spam else []
    with tempfile.TemporaryDirectory() as directory:
        def go():
            train(model, h, train_loader, test_loader, Path(directory), platform=platform(device),
                  data_order_seed=0, hooks=hooks)
        return timed(go, device) if CLOCK[0] is time.perf_counter else clocked(go)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=5, help="epochs per run (one update every 5)")
    parser.add_argument("--repeats", type=int, default=1, help="timed runs of each, alternating")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (0: torch's default)")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda if available)")
    parser.add_argument("--curvature", default="diag_ggn", choices=("diag_ggn", "diag_ef", "kfac"),
                        help="SpaM's curvature (the goal is stated for diag_ggn)")
    parser.add_argument("--clock", default="wall", choices=("wall", "cpu"),
                        help="wall-clock seconds, or this process's CPU seconds (steadier on a shared machine)")
    args = parser.parse_args()
    if args.clock == "cpu":
        CLOCK[0] = time.process_time
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    device = device_from_argv()
    data = loaders(device)
    print(f"LeNet-300-100 on Fashion-MNIST ({data[0].num_examples} images), batch {data[0].batch_size}, "
          f"{args.epochs} epochs, {device}, {torch.get_num_threads()} threads; SpaM: unit prior, {args.curvature}, "
          f"marglik every 5 epochs, 100 Adam steps; {args.clock} clock")
    run(False, 1, device, data), run(True, 1, device, data, args.curvature)  # warm-up (no update in one epoch)
    map_times, spam_times, updates = [], [], []
    for _ in range(args.repeats):
        map_times.append(run(False, args.epochs, device, data))
        TimedSpamHook.seconds = 0.0
        spam_times.append(run(True, args.epochs, device, data, args.curvature))
        updates.append(TimedSpamHook.seconds)
    map_s, spam_s, update_s = (statistics.median(t) for t in (map_times, spam_times, updates))
    print(f"MAP  training:                    {map_s:8.2f} s")
    print(f"SpaM training:                    {spam_s:8.2f} s")
    print(f"  of which marglik updates:       {update_s:8.2f} s ({args.epochs // 5} update(s))")
    print(f"  penalty and the rest (vs MAP):  {100 * (spam_s - update_s - map_s) / map_s:+8.1f} %")
    print(f"ratio={spam_s / map_s:.4f}")


if __name__ == "__main__":
    main()
