"""What a training run shows while it trains, on the primary process; nothing with --quiet.

  - on a terminal: a tqdm bar at the bottom, and above it one line per evaluation that stays
    (the history of the run; the bar itself goes when training ends);
  - in a batch job (stderr is not a terminal, e.g. a Slurm log): the same lines on stdout for
    `tail -f`, at most one every LINE_EVERY_S seconds (the first at once), and the last
    evaluation's always, so a run that evaluates every step (xor) does not write thousands.

A line reads `<run> step 3ep0it  train_loss=…  test_loss=…  test_accuracy=…  elapsed=12.3s  601.20 it/s`:
elapsed and it/s count this session only (a resumed run, or a branch that starts after step 0,
counts from where it started).
"""

from __future__ import annotations

import sys
import time
from typing import Callable, Optional, TextIO

from tqdm import tqdm

LINE_EVERY_S = 10.0  # in a batch job, at most one progress line this often (plus the last)
SHOWN = ("train_loss", "test_loss", "test_accuracy")


def _now() -> float:
    return time.monotonic()


class Progress:
    def __init__(self, name: str, total: int, done: int, quiet: bool, primary: bool = True, *,
                 terminal: Optional[bool] = None, clock: Optional[Callable[[], float]] = None,
                 out: Optional[TextIO] = None, line_every_s: Optional[float] = None):
        """`total` steps from the start of this training (relative), of which `done` are done;
        `terminal` (default: whether stderr is one), `clock`, `out` (default stdout) and
        `line_every_s` are for tests."""
        self.name = name
        terminal = sys.stderr.isatty() if terminal is None else terminal
        self.mode = "off" if quiet or not primary else ("bar" if terminal else "lines")
        self.clock, self.out = clock or _now, out
        self.line_every_s = LINE_EVERY_S if line_every_s is None else line_every_s
        self.started = self.clock()
        self.total, self.position = total, done  # steps of this training, relative to its start
        self.steps_this_session = 0
        self.last_printed: Optional[float] = None
        self.pending: Optional[str] = None  # a line held back by the throttle (printed at close)
        self.bar = tqdm(total=total, initial=done, dynamic_ncols=True, leave=False, desc=name,
                        disable=self.mode != "bar")

    def update(self) -> None:
        self.steps_this_session += 1
        self.position += 1
        self.bar.update(1)

    def line(self, step: str, metrics: dict[str, float]) -> str:
        elapsed = self.clock() - self.started
        rate = self.steps_this_session / elapsed if elapsed > 0 else 0.0
        values = "  ".join(f"{key}={value:.4f}" for key, value in metrics.items() if key in SHOWN)
        return f"{self.name} step {step}  {values}  elapsed={elapsed:.1f}s  {rate:.2f} it/s"

    def evaluated(self, iteration: int, step: str, metrics: dict[str, float]) -> None:
        """An evaluation at `step` (`iteration` is absolute; the rate counts this session's steps)."""
        if self.mode == "bar":
            shown = {key: f"{value:.4f}" for key, value in metrics.items() if key in SHOWN}
            self.bar.set_postfix(step=step, **shown)
            self.bar.write(self.line(step, metrics), file=sys.stderr)
        elif self.mode == "lines":
            now = self.clock()
            text = self.line(step, metrics)
            last = self.position >= self.total
            if last or self.last_printed is None or now - self.last_printed >= self.line_every_s:
                self._print(text, now)
            else:
                self.pending = text

    def _print(self, text: str, now: float) -> None:
        print(text, file=self.out or sys.stdout, flush=True)
        self.last_printed, self.pending = now, None

    def close(self) -> None:
        if self.pending is not None:  # the last evaluation's line, held back by the throttle
            self._print(self.pending, self.clock())
        self.bar.close()
