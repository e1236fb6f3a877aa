"""What a training run shows while it trains: a tqdm bar on a terminal; in a batch job (stderr
is not a terminal, e.g. a Slurm log) one line per evaluation that `tail -f` can follow; nothing
with --quiet."""

from __future__ import annotations

import sys
import time

from tqdm import tqdm


class Progress:
    def __init__(self, name: str, total: int, done: int, quiet: bool, primary: bool = True):
        self.name = name
        self.mode = "off" if quiet or not primary else ("bar" if sys.stderr.isatty() else "lines")
        self.started = time.time()
        self.first_iteration = done
        self.bar = tqdm(total=total, initial=done, dynamic_ncols=True, leave=False, desc=name,
                        disable=self.mode != "bar")

    def update(self) -> None:
        self.bar.update(1)

    def evaluated(self, iteration: int, step: str, metrics: dict[str, float]) -> None:
        shown = {key: value for key, value in metrics.items() if key in ("train_loss", "test_loss", "test_accuracy")}
        if self.mode == "bar":
            self.bar.set_postfix(step=step, **{key: f"{value:.4f}" for key, value in shown.items()})
        elif self.mode == "lines":
            elapsed = time.time() - self.started
            rate = (iteration - self.first_iteration) / elapsed if elapsed > 0 else 0.0
            values = "  ".join(f"{key}={value:.4f}" for key, value in shown.items())
            print(f"{self.name} step {step}  {values}  elapsed={elapsed:.1f}s  {rate:.2f} it/s", flush=True)

    def close(self) -> None:
        self.bar.close()
