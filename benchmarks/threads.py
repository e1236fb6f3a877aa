"""An epoch of LeNet-300-100 on Fashion-MNIST (batch 128, on the CPU) with torch's default thread
count against the default chosen by `--num_threads=auto` (platforms/threads.py), alone and beside a
second training process doing the same with the same thread count. Rounds alternate the four
conditions, so load from elsewhere hits them alike; each condition's median and spread (min-max)
are printed. Last line: ratio=<auto / torch's default, epoch seconds beside a second process>
(below 1: auto is faster).

    python benchmarks/threads.py [--rounds=3] [--epochs=2]
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

TORCH_DEFAULT = torch.get_num_threads()  # before anything sets it

from fashion_lenet import TRAINING, lenet, loaders, platform  # noqa: E402
from timing import timed  # noqa: E402

from platforms import threads  # noqa: E402
from training.loop import train  # noqa: E402

DEVICE = torch.device("cpu")


def flag(name: str, default: int) -> int:
    return int(next((a.split("=", 1)[1] for a in sys.argv[1:] if a.startswith(f"--{name}=")), default))


def epoch_function():
    train_loader, test_loader = loaders(DEVICE)

    def epoch() -> None:
        with tempfile.TemporaryDirectory() as out:
            train(lenet(DEVICE), TRAINING, train_loader, test_loader, Path(out), platform=platform(DEVICE),
                  data_order_seed=0)
    return epoch


def worker(count: int) -> None:
    """The second training process: epochs until killed."""
    torch.set_num_threads(count)
    epoch = epoch_function()
    print("ready", flush=True)
    while True:
        epoch()


class Beside:
    """A second training process with `count` threads, training while the block runs."""

    def __init__(self, count: int):
        self.count = count

    def __enter__(self) -> "Beside":
        self.process = subprocess.Popen([sys.executable, __file__, "--worker", f"--threads={self.count}"],
                                        stdout=subprocess.PIPE, text=True)
        if self.process.stdout.readline().strip() != "ready":
            raise RuntimeError("the second training process did not start")
        time.sleep(1.0)  # well into its first epoch
        return self

    def __exit__(self, *exc) -> None:
        self.process.kill()
        self.process.wait()


def measure(epoch, count: int, epochs: int, beside: bool) -> list[float]:
    torch.set_num_threads(count)
    if not beside:
        return [timed(epoch) for _ in range(epochs)]
    with Beside(count):
        return [timed(epoch) for _ in range(epochs)]


def spread(times: list[float]) -> str:
    return f"median {statistics.median(times):.2f} s (min {min(times):.2f}, max {max(times):.2f}, n={len(times)})"


def main() -> None:
    if "--worker" in sys.argv:
        worker(flag("threads", TORCH_DEFAULT))
        return
    rounds, epochs = flag("rounds", 3), flag("epochs", 2)
    chosen = threads.auto()
    counts = {"torch default": TORCH_DEFAULT, "auto": chosen.threads}
    epoch = epoch_function()
    epoch()  # warm-up
    times: dict[tuple[str, bool], list[float]] = {(name, beside): [] for beside in (False, True) for name in counts}
    for _ in range(rounds):
        for beside in (False, True):
            for name, count in counts.items():
                times[(name, beside)] += measure(epoch, count, epochs, beside)
    print(f"cores in affinity={threads.affinity_cpus()} torch default threads={TORCH_DEFAULT} "
          f"auto={chosen.threads} ({chosen.why})")
    for (name, beside), seconds in times.items():
        where = "beside a second process" if beside else "alone"
        print(f"{name:>13} ({counts[name]} threads), {where:>23}: epoch {spread(seconds)}")
    alone = statistics.median(times[("auto", False)]) / statistics.median(times[("torch default", False)])
    shared = statistics.median(times[("auto", True)]) / statistics.median(times[("torch default", True)])
    print(f"alone: auto / torch default = {alone:.2f}")
    print(f"ratio={shared:.3f}")


if __name__ == "__main__":
    main()
