"""Time a training run and, given a benchmark, end it as soon as it reaches that training accuracy.

The chaos-causality paper trains its pruned networks until they reach a benchmark accuracy on the
training set and reports the epochs and seconds that took. At every evaluation (every epoch by
default, `--eval_every`) this hook measures the accuracy on the whole training split, logs it as
`train_accuracy` (by the branch's --accuracy rule, as the authors' `accuracy()` on the training
rows), and at the first evaluation where it is at least the benchmark asks the loop to
stop there (those weights become the final ones; done.json says `stopped_early`). Without a
benchmark it only times the run. When the run ends it writes benchmark.json: the benchmark,
whether and at which step it was reached, and the wall-clock seconds of training (evaluations
included, summed over the sessions of a resumed run; the steps redone after a kill count again).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable, Optional

import torch

from branches.chaos.accuracy import accuracy_of
from platforms.storage import write_json
from training.hooks import Hook, TrainState
from training.losses import Loss, evaluate

BENCHMARK_FILE = "benchmark.json"


class TrainAccuracyBenchmark(Hook):
    key = "train_accuracy_benchmark"

    def __init__(self, threshold: Optional[float], loss: Loss,
                 correct: Optional[Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = None):
        self.threshold, self.loss, self.correct = threshold, loss, correct
        self.reached_at: Optional[int] = None
        self.seconds_before = 0.0  # training time of earlier sessions
        self.seconds_to_benchmark: Optional[float] = None
        self._session_start = time.perf_counter()

    def seconds(self) -> float:
        return self.seconds_before + time.perf_counter() - self._session_start

    def on_start(self, state: TrainState) -> None:
        self._session_start = time.perf_counter()

    def at_eval(self, state: TrainState, metrics: dict[str, float]) -> None:
        if self.threshold is None or self.reached_at is not None:
            return
        if self.correct is None:
            accuracy = evaluate(state.model, state.train_loader, self.loss, prefix="benchmark")["benchmark_accuracy"]
        else:
            accuracy = accuracy_of(state.model, state.train_loader, self.correct)
        metrics["train_accuracy"] = accuracy
        if accuracy >= self.threshold:
            self.reached_at, self.seconds_to_benchmark = state.iteration, self.seconds()
            state.request_stop(f"training accuracy {accuracy:.4f} reached --stop_at_train_accuracy={self.threshold}")

    def on_end(self, state: TrainState) -> None:
        if not state.platform.is_primary:
            return
        seconds = self.seconds_to_benchmark if self.reached_at is not None else self.seconds()
        reached = None if self.threshold is None else self.reached_at is not None
        write_json({"threshold": self.threshold, "reached": reached,
                    "iteration": state.iteration, "epochs": state.iteration / state.iterations_per_epoch,
                    "seconds": round(seconds, 3)}, Path(state.out_dir) / BENCHMARK_FILE)

    def state_dict(self) -> dict:
        return {"seconds": self.seconds()}

    def load_state_dict(self, state: dict) -> None:
        self.seconds_before = float(state["seconds"])
