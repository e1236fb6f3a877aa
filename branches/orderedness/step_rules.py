"""Per-step pruning rules and orderedness tracking, as training-loop hooks.

`RuleHook` rewrites one weight with a pruning rule (`pruning/rules`) after every optimizer step,
at the training progress x that the rule's schedule reads. `--progress=epoch` (the paper's) is
the epoch of the step just taken over the number of epochs, so x runs 0, 1/n, ..., (n-1)/n and
never reaches 1; `--progress=step` is the steps taken over all steps, reaching 1 at the last.
The rule's state (a drawn mask, a frozen threshold) is checkpointed, so a killed run resumes
bitwise. Both hooks have a stacked form (`after_stacked_optimizer_step`, training/hooks.py), so
runs of this branch train stacked under `submit --stack`: the same work on a member's views of
the stacked weights.

`OrderednessTracker` copies the weight at the start and after every `every`-th step (after the
rule), keeps the copies on the device, and scores them in one batched call at the first
evaluation once FLUSH_AT copies are waiting (and at the end): orderedness of the unit-to-unit
block, density of the whole weight and the self-loop share of the block's mass, written to
metrics.jsonl at their own iterations. So the hot loop gains one small copy per tracked step and
no host sync, and a 1000-step run makes a handful of orderedness calls, not 1000.
"""

from __future__ import annotations

import json
from typing import Callable

import torch

from foundations.step import Step
from orderedness import OrderednessResult
from platforms.storage import write_text
from pruning.rules import Rule
from training.hooks import Hook, TrainState
from training.metrics import read_records

FLUSH_AT = 256  # copies waiting before an evaluation scores them
PROGRESS_MODES = ("epoch", "step")

# Series names in metrics.jsonl.
ORDEREDNESS, DENSITY, SELF_LOOPS, GAP = "orderedness", "density", "self_loop_fraction", "orderedness_gap"
SERIES = (ORDEREDNESS, DENSITY, SELF_LOOPS, GAP)


def progress_after(iteration: int, iterations_per_epoch: int, end_iteration: int, mode: str) -> float:
    """The progress a rule sees after optimizer step number `iteration` (1 for the first step)."""
    if mode == "step":
        return iteration / end_iteration
    epochs = end_iteration / iterations_per_epoch
    return ((iteration - 1) // iterations_per_epoch) / epochs


def progress_schedule(iterations_per_epoch: int, end_iteration: int, mode: str) -> list[float]:
    """The progress after each of the steps 1..end_iteration, in order."""
    return [progress_after(i, iterations_per_epoch, end_iteration, mode) for i in range(1, end_iteration + 1)]


def parameter(model: torch.nn.Module, name: str) -> torch.nn.Parameter:
    return dict(model.named_parameters())[name]


class RuleHook(Hook):
    """Apply `rule` to the parameter `name` after every optimizer step."""

    key = "pruning_rule"

    def __init__(self, rule: Rule, name: str, progress: str = "epoch") -> None:
        if progress not in PROGRESS_MODES:
            raise ValueError(f"progress must be one of {PROGRESS_MODES}, got {progress!r}")
        self.rule, self.name, self.progress = rule, name, progress
        self.weight: torch.nn.Parameter | None = None

    def on_start(self, state: TrainState) -> None:
        self.weight = parameter(state.model, self.name)

    def after_optimizer_step(self, state: TrainState) -> None:
        x = progress_after(state.iteration, state.iterations_per_epoch, state.end_iteration, self.progress)
        self.rule.apply(self.weight, x)

    def after_stacked_optimizer_step(self, state: TrainState, parameters: dict[str, torch.Tensor]) -> None:
        x = progress_after(state.iteration, state.iterations_per_epoch, state.end_iteration, self.progress)
        self.rule.apply(parameters[self.name], x)

    def state_dict(self) -> dict:
        return self.rule.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.rule.load_state_dict(state)


class OrderednessTracker(Hook):
    """Record orderedness, density and the self-loop share of one weight's square block.

    `measure` maps blocks (B, N, N) to an OrderednessResult (exact, or the heuristic with a
    gap, which is then written too). `units` = N = H + O, the block is weight[:, :units].
    """

    key = "orderedness_tracker"

    def __init__(self, name: str, units: int, every: int, measure: Callable[[torch.Tensor], OrderednessResult]):
        if every < 1:
            raise ValueError(f"every must be at least 1, got {every}")
        self.name, self.units, self.every, self.measure = name, units, every, measure
        self.weight: torch.nn.Parameter | None = None
        self.iterations: list[int] = []
        self.copies: list[torch.Tensor] = []

    def on_start(self, state: TrainState) -> None:
        self.weight = parameter(state.model, self.name)
        if state.iteration == state.start_iteration:
            self._record(state.iteration)
        else:
            self._forget_lines_written_after_checkpoint(state)

    def after_optimizer_step(self, state: TrainState) -> None:
        if state.iteration % self.every == 0 or state.iteration == state.end_iteration:
            self._record(state.iteration)

    def after_stacked_optimizer_step(self, state: TrainState, parameters: dict[str, torch.Tensor]) -> None:
        if state.iteration % self.every == 0 or state.iteration == state.end_iteration:
            self._record(state.iteration, parameters[self.name])

    def at_eval(self, state: TrainState, metrics: dict[str, float]) -> None:
        if len(self.copies) >= FLUSH_AT or state.iteration == state.end_iteration:
            self.flush(state)

    def on_end(self, state: TrainState) -> None:
        self.flush(state)

    def flush(self, state: TrainState) -> None:
        """Score every recorded copy in one call and write their values (one host sync)."""
        if not self.copies:
            return
        weights = torch.stack(self.copies)
        result = self.measure(weights[:, :, :self.units])
        density = (weights != 0).flatten(1).sum(dim=1).to(result.orderedness.dtype) / weights[0].numel()
        columns = [result.orderedness, density, result.diagonal_fraction]
        names = [ORDEREDNESS, DENSITY, SELF_LOOPS]
        if not result.exact:
            columns.append(result.gap)
            names.append(GAP)
        rows = torch.stack(columns, dim=1).tolist()
        state.log.write_many([(iteration, str(Step(iteration, state.iterations_per_epoch)), dict(zip(names, values)))
                              for iteration, values in zip(self.iterations, rows)])
        self.iterations, self.copies = [], []

    def _record(self, iteration: int, weight: torch.Tensor | None = None) -> None:
        self.iterations.append(iteration)
        self.copies.append((self.weight if weight is None else weight).detach().clone())

    def _forget_lines_written_after_checkpoint(self, state: TrainState) -> None:
        """After a resume: the loop kept every line up to the checkpoint's iteration, which
        includes values of the copies restored here if a flush wrote them after the checkpoint
        was taken. Those lines go, so that the copies are written again exactly where the
        uninterrupted run wrote them (the file then matches it byte for byte)."""
        waiting = set(self.iterations)
        path = state.log.path
        if not waiting or not state.log.enabled or not path.exists():
            return
        records = list(read_records(path))
        kept = [r for r in records if not (r["iteration"] in waiting and r["name"] in SERIES)]
        if len(kept) != len(records):
            write_text("".join(json.dumps(record) + "\n" for record in kept), path)

    def state_dict(self) -> dict:
        if not self.copies:
            return {"iterations": torch.zeros(0, dtype=torch.long)}
        return {"iterations": torch.tensor(self.iterations, dtype=torch.long), "copies": torch.stack(self.copies)}

    def load_state_dict(self, state: dict) -> None:
        self.iterations = state["iterations"].tolist()
        self.copies = list(state["copies"].unbind(0)) if self.iterations else []
