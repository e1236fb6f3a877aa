"""The training loop: one loop for the trunk and every branch, driven by Steps.

Per step the loop does forward, loss (plus any hook's loss term), backward, hooks, optimizer step
and nothing else: no host sync. The host reads a number only at boundaries (evaluation, saved
steps, checkpoints), which is also where non-finite losses are caught, so every checkpoint on
disk holds a finite run. Boundaries are tested per iteration (never listed up front), so any
training length runs in constant memory. `train` shows the structure (setup, resume, the step,
done.json); the work at a boundary is `BoundaryWork`'s, and the running training loss, summed on
the device between evaluations, is a `RunningLoss`.

One extension point lets another trainer take `train`'s calls: within `dispatching_to(handler)`,
`train` first hands its arguments to `handler`, which returns the result or DECLINED (then the
loop runs as usual). Stacked training (training/stacked/, runs/stack_plan.py) uses it to collect
the calls of many runs; outside such a block the only cost is one ContextVar read per call. A
branch whose trainings do not depend on each other (controls of one mask, levels of masks already
made) hands them to `train_together`, which such a trainer may run side by side. The
public pieces that a trainer of its own reuses are `Boundaries` (with its epoch-checkpoint
spacing), `BoundaryWork` (whose `test_metrics` it may override), `resume_from_checkpoint`,
`count_compute` and `write_done`.

Under torchrun (platforms/distributed.py) the same loop runs on every rank: the model is wrapped
in DistributedDataParallel for the step, each rank takes its slice of every global batch
(`--batch_size` stays the global batch), and its loss is its share of the global batch mean
times the world size, so DDP's average over the ranks is the single-process gradient (up to
rounding), also for a smaller last batch split unevenly. Evaluation sums every rank's share of the
test split, so all ranks log the same numbers; the running training loss is pooled only at
boundaries; signals are agreed on (SignalVote) so that every rank checkpoints and stops at the
same step; only rank 0 writes.
Hooks see the bare module (`state.model`, never the DDP wrapper) and the whole, unsharded loaders:
they run on every rank with the same inputs and so stay in step; a hook that writes files should
do so only where `state.platform.is_primary`.
"""

from __future__ import annotations

import contextlib
import contextvars
import signal
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NoReturn, Optional, Sequence

import torch

from foundations import paths
from foundations.bundles import TrainingHparams
from foundations.errors import UserError
from foundations.step import Step
from platforms import sinks
from platforms.distributed import World, data_parallel
from platforms.platform import Platform
from platforms.storage import write_json
from training import checkpoint
from training.compute import compute_record
from training.hooks import Hook, TrainState, overrides
from training.interrupts import Interrupted, catch_interrupts
from training.losses import Loss, evaluate, with_derived
from training.metrics import MetricLog
from training.optimizers import LRSchedule, build_optimizer
from training.progress import Progress


class TrainingDiverged(UserError):
    """The loss became NaN or infinite."""


MIN_STEPS_BETWEEN_EPOCH_CHECKPOINTS = 100

DECLINED: Any = object()  # a dispatch handler's answer: not mine, the loop trains this call itself
Thunks = Sequence[Callable[[], Any]]
# (handler of `train`'s calls, runner of `train_together`'s thunks or None)
_dispatch: contextvars.ContextVar[Optional[tuple[Callable[..., Any], Optional[Callable[[Thunks], list]]]]] = \
    contextvars.ContextVar("training_loop_dispatch", default=None)


@contextlib.contextmanager
def dispatching_to(handler: Callable[..., Any], together: Optional[Callable[[Thunks], list]] = None
                   ) -> Iterator[None]:
    """Within the block (in this thread's or task's context only), every `train(...)` call is
    first handed to `handler`, with `train`'s own arguments; it returns what `train` would
    return, or DECLINED for the loop to run the call as usual. A call the handler itself makes to
    `train` comes back to it (it declines those). `together`, where given, runs the thunks of
    `train_together` (so that their trainings can reach the handler at once). Blocks nest; the
    innermost handler is asked."""
    token = _dispatch.set((handler, together))
    try:
        yield
    finally:
        _dispatch.reset(token)


def is_dispatching() -> bool:
    """Whether `train` calls in this context go to a dispatch handler first."""
    return _dispatch.get() is not None


def train_together(thunks: Thunks) -> list[Any]:
    """Run independent pieces of work that each train (a branch's controls, its levels that
    depend on nothing but masks already made), and return their results in order. Alone they run
    one after another; within a trainer that can take several trainings at once (`dispatching_to`
    with `together`: stacked training) they run side by side, so that their `train` calls can be
    trained together. The thunks must not depend on one another. An exception ends the sequence
    at once one after another; side by side, the first is raised once every thunk has ended."""
    dispatch = _dispatch.get()
    if dispatch is None or dispatch[1] is None or len(thunks) < 2:
        return [thunk() for thunk in thunks]
    outcomes = dispatch[1](thunks)
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            raise outcome
    return outcomes


class Boundaries:
    """Which iterations of [start, end] evaluate, save the weights, or checkpoint. Epoch-end
    checkpoints are at least `epoch_checkpoint_spacing` steps apart (a stacked trainer, whose
    step does N runs' work, spaces them N times further)."""

    def __init__(self, h: TrainingHparams, ipe: int, start: int, end: int, checkpoint_every: Optional[str],
                 epoch_checkpoint_spacing: int = MIN_STEPS_BETWEEN_EPOCH_CHECKPOINTS):
        self.ipe, self.start, self.end = ipe, start, end
        self.epoch_checkpoint_spacing = epoch_checkpoint_spacing
        self.eval_every = Step.parse(h.eval_every, ipe, "eval_every").iteration if h.eval_every else ipe
        self.checkpoint_every = (Step.parse(checkpoint_every, ipe, "checkpoint_every").iteration
                                 if checkpoint_every else 0)
        if self.eval_every <= 0 or checkpoint_every and self.checkpoint_every <= 0:
            raise UserError("--eval_every and --checkpoint_every must be at least 1it")
        self.saves = {start, end} | {s.iteration for s in Step.parse_list(h.weight_save_steps, ipe, "weight_save_steps")
                                     if start <= s.iteration <= end}

    def evaluates(self, iteration: int) -> bool:
        """The start, the end, and every multiple of eval_every (so a run that starts mid-epoch
        evaluates where its trunk did)."""
        return iteration in (self.start, self.end) or iteration % self.eval_every == 0

    def saves_weights(self, iteration: int) -> bool:
        return iteration in self.saves

    def checkpoints(self, iteration: int, last: Optional[int]) -> bool:
        """Every --checkpoint_every, and at epoch ends: the first one, then those at least
        `epoch_checkpoint_spacing` (MIN_STEPS_BETWEEN_EPOCH_CHECKPOINTS) after the `last`
        checkpoint (so a task with one step per epoch, like xor, does not spend its time writing
        checkpoints). A function of the iterations alone, so every rank decides alike."""
        if not self.start < iteration < self.end:
            return False
        if self.checkpoint_every and iteration % self.checkpoint_every == 0:
            return True
        return iteration % self.ipe == 0 and (last is None or iteration - last >= self.epoch_checkpoint_spacing)


class RunningLoss:
    """The training loss summed since the last evaluation, kept on the device so that the step
    never syncs with the host. Each rank holds its own part; `pooled()` adds them up."""

    def __init__(self, device: torch.device, world: World):
        self.sum = torch.zeros((), device=device)  # this rank's part of the running sum
        self.count = 0  # the steps in it (the same on every rank)
        self.world = world

    def restore(self, total: torch.Tensor, count: int) -> None:
        """Continue from a checkpoint's running loss, which holds the total over the ranks: rank 0
        carries it, the other ranks start their part from zero."""
        self.sum, self.count = total, count
        if not self.world.is_primary:
            self.sum.zero_()

    def add(self, task_loss: torch.Tensor) -> None:
        self.sum += task_loss.detach().float()
        self.count += 1

    def pooled(self) -> torch.Tensor:
        """The running sum over every rank (a collective: all ranks call it). In one process it
        is `self.sum` itself, not a copy."""
        return self.world.sum_(self.sum.clone()) if self.world.is_distributed else self.sum

    def reset(self) -> None:
        self.sum.zero_()
        self.count = 0


class BoundaryWork:
    """What the loop does between steps, at the boundaries `Boundaries` names: catch a non-finite
    loss, evaluate (hooks' `at_eval`, metrics.jsonl), save the weights (hooks' `at_save`),
    checkpoint, and checkpoint-then-raise on a signal.

    Every rank runs it alike (the collectives in it are called in the same order everywhere);
    only the primary writes files. The boundary work at `done_at`, a resumed checkpoint's
    iteration, is already on disk and is not redone."""

    def __init__(self, *, model: torch.nn.Module, optimizer: torch.optim.Optimizer, out_dir: Path,
                 platform: Platform, state: TrainState, hooks: Sequence[Hook], bounds: Boundaries,
                 running_loss: RunningLoss, test_split, loss_fn: Loss, schedule: LRSchedule, log: MetricLog,
                 progress: Progress, done_at: Optional[int]):
        self.model, self.optimizer, self.out_dir, self.platform = model, optimizer, out_dir, platform
        self.world = platform.world
        self.state, self.hooks, self.bounds, self.running_loss = state, hooks, bounds, running_loss
        self.test_split, self.loss_fn, self.schedule = test_split, loss_fn, schedule
        self.log, self.progress = log, progress
        self.done_at = done_at
        self.last_checkpoint = done_at  # the iteration of the checkpoint on disk, if any
        self.last_metrics: dict[str, float] = {}

    def run(self, step: Step) -> None:
        """The boundary work due before the step from `step` (none between boundaries)."""
        iteration = step.iteration
        if iteration == self.done_at:
            return
        stopping = self.state.stop_reason is not None  # a hook asked to end here: evaluate and save
        evaluating = stopping or self.bounds.evaluates(iteration)
        saving = self.bounds.saves_weights(iteration)
        checkpointing = self.bounds.checkpoints(iteration, self.last_checkpoint)
        if not (evaluating or saving or checkpointing):
            return
        loss_total = self.running_loss.pooled()
        self._check_finite(step, loss_total)
        if evaluating:
            loss_total = self._evaluate(step, loss_total)
        if self.state.stop_reason is not None:  # training ends here: these are the final weights
            saving, checkpointing = True, False
        if saving and self.platform.is_primary:
            checkpoint.save_model(self.model, self.out_dir, step)
            for hook in self.hooks:
                hook.at_save(self.state)
        if checkpointing:
            self._save_checkpoint(iteration, loss_total)
            self.last_checkpoint = iteration

    def raise_interrupted(self, step: Step, signum: int, handler_before: Any) -> NoReturn:
        """Checkpoint at `step` (unless the checkpoint on disk is already there) and raise
        Interrupted. Every rank calls it at the same step (the signal vote)."""
        if step.iteration != self.last_checkpoint:
            self._save_checkpoint(step.iteration, self.running_loss.pooled())
        self.progress.close()
        name = signal.Signals(signum).name
        raise Interrupted(f"{name} received: checkpointed {self.out_dir} at step {step}; "
                          f"rerun the same command to resume", signum, handler_before)

    def _check_finite(self, step: Step, loss_total: torch.Tensor) -> None:
        """Raise TrainingDiverged before anything of a non-finite run is written (the last
        checkpoint on disk stays the last finite one)."""
        if self.running_loss.count and not torch.isfinite(loss_total):
            _record_failure(self.out_dir, self.platform, step, loss_total.item())
            raise TrainingDiverged(f"the training loss became {loss_total.item()} before step {step}; "
                                   f"the last good checkpoint is kept in {self.out_dir}: lower --lr and rerun")

    def test_metrics(self) -> dict[str, float]:
        """The test split's summed metrics (`evaluate(..., derived=False)`, over every rank), which
        `_evaluate` completes, logs and shows. A trainer that evaluates otherwise (stacked
        training: one pass for all its members) overrides this and nothing else."""
        self.world.broadcast_buffers(self.model)
        return self.world.sum(evaluate(self.model, self.test_split, self.loss_fn, derived=False))

    def _evaluate(self, step: Step, loss_total: torch.Tensor) -> torch.Tensor:
        """Evaluate, log and show the metrics; the running loss goes into them and restarts from
        zero. Returns the pooled running loss as it stands after (for a checkpoint here)."""
        metrics = with_derived(self.test_metrics(), self.loss_fn.task)
        if self.running_loss.count:
            metrics["train_loss"] = (loss_total / self.running_loss.count).item()
            self.running_loss.reset()
            loss_total = torch.zeros_like(self.running_loss.sum)
        metrics["lr"] = self.schedule(step.iteration)
        for hook in self.hooks:
            hook.at_eval(self.state, metrics)
        self.log.write(step.iteration, str(step), metrics)
        self.last_metrics = metrics
        self.progress.evaluated(step.iteration, str(step), metrics)
        return loss_total

    def _save_checkpoint(self, iteration: int, loss_total: torch.Tensor) -> None:
        if self.platform.is_primary:
            checkpoint.save_checkpoint(self.out_dir, model=self.model, optimizer=self.optimizer, iteration=iteration,
                                       loss_sum=loss_total, loss_count=self.running_loss.count, hooks=self.hooks)


def train(model: torch.nn.Module, h: TrainingHparams, train_loader, test_loader, out_dir: Path, *,
          platform: Platform, data_order_seed: int, start: Optional[Step] = None,
          end: Optional[Step] = None, hooks: Sequence[Hook] = ()) -> dict[str, float]:
    """Train `model` in place from `start` (default 0) to `end` (default training_steps), writing
    metrics, saved weights, checkpoints and done.json to `out_dir`. Resumes from checkpoint.pt.
    Returns the final evaluation metrics. Within `dispatching_to(handler)`, the handler is asked
    first."""
    dispatch = _dispatch.get()
    if dispatch is not None:
        result = dispatch[0](model, h, train_loader, test_loader, out_dir, platform=platform,
                         data_order_seed=data_order_seed, start=start, end=end, hooks=hooks)
        if result is not DECLINED:
            return result
    out_dir = Path(out_dir)
    world = platform.world
    if world.is_primary:
        out_dir.mkdir(parents=True, exist_ok=True)
    ipe = len(train_loader)
    start = start or Step.zero(ipe)
    end = end or Step.parse(h.training_steps, ipe, "training_steps")
    if start > end:
        raise UserError(f"the start step {start} is after the end of training {end}")
    check_world(train_loader, world)
    parallel = world.is_distributed
    train_split = train_loader.sharded(world.rank, world.world_size) if parallel else train_loader
    test_split = test_loader.sharded(world.rank, world.world_size, whole_batches=True) if parallel else test_loader
    device = platform.device
    model.to(device).train()
    optimizer = build_optimizer(h, model)
    schedule = LRSchedule(h, ipe)
    loss_fn = Loss(h.loss, train_loader.task, train_loader.num_classes, getattr(h, "label_smoothing", 0.0))
    bounds = Boundaries(h, ipe, start.iteration, end.iteration, platform.checkpoint_every)
    log = MetricLog(out_dir / paths.METRICS, enabled=platform.is_primary)
    autocast = (torch.autocast("cuda", dtype=torch.bfloat16) if h.precision == "bf16" and device.type == "cuda"
                else contextlib.nullcontext())

    running_loss = RunningLoss(device, world)
    # the iteration of the checkpoint resumed (None: a fresh start)
    done_at = resume_from_checkpoint(out_dir, platform, model, optimizer, hooks, log, running_loss)
    iteration = start.iteration if done_at is None else done_at

    state = TrainState(model, optimizer, iteration, ipe, out_dir, start_iteration=start.iteration,
                       end_iteration=end.iteration, log=log, platform=platform, train_loader=train_loader,
                       test_loader=test_loader)
    for hook in hooks:
        hook.on_start(state)
    forward = data_parallel(model, world, platform.sync_batchnorm)
    loss_hooks = [hook for hook in hooks if overrides(hook, "loss_term")]
    before_hooks = [hook for hook in hooks if overrides(hook, "before_optimizer_step")]
    after_hooks = [hook for hook in hooks if overrides(hook, "after_optimizer_step")]
    progress = Progress(out_dir.name, end.iteration - start.iteration, iteration - start.iteration,
                        quiet=platform.quiet, primary=platform.is_primary)
    boundary = BoundaryWork(model=model, optimizer=optimizer, out_dir=out_dir, platform=platform, state=state,
                            hooks=hooks, bounds=bounds, running_loss=running_loss, test_split=test_split,
                            loss_fn=loss_fn, schedule=schedule, log=log, progress=progress, done_at=done_at)
    vote = world.signal_vote() if parallel else None
    batches = None
    started = time.time()

    with catch_interrupts(platform.catch_signals) as interrupt:
        if vote is not None:
            vote.cast(interrupt.signum)
        while True:  # the boundary work due here, the end or a signal, then one step
            state.iteration = iteration
            step = Step(iteration, ipe)
            boundary.run(step)
            if iteration == end.iteration or state.stop_reason is not None:
                break
            signum = vote.result() if vote is not None else interrupt.signum
            if signum is not None:  # every rank takes this branch at the same step
                boundary.raise_interrupted(step, signum, interrupt.handler_before(signum))

            if batches is None or step.it == 0:
                batches = train_split.batches(step.ep, start=step.it, order_seed=data_order_seed)
            x, y = next(batches)
            schedule.apply(optimizer, iteration)
            with autocast:
                outputs = forward(x)
                if parallel:  # this rank's share of the global batch mean; DDP averages W shares
                    task_loss = loss_fn.sum(outputs, y) / global_batch_size(train_loader, step.it)
                    loss = task_loss * world.world_size
                else:
                    task_loss = loss = loss_fn(outputs, y)
                for hook in loss_hooks:
                    term = hook.loss_term(state)
                    if term is not None:
                        loss = loss + term
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            for hook in before_hooks:
                hook.before_optimizer_step(state)
            optimizer.step()
            iteration += 1
            state.iteration = iteration
            for hook in after_hooks:
                hook.after_optimizer_step(state)
            running_loss.add(task_loss)
            progress.update()
            if vote is not None:
                vote.cast(interrupt.signum)
        if vote is not None:
            vote.result()  # training ended: the last vote is moot

    del forward  # DDP's gradient hooks go with the wrapper
    progress.close()
    for hook in hooks:
        hook.on_end(state)
    compute = (count_compute(model, test_loader, train_loader, start.iteration, iteration) if platform.is_primary
               else None)
    write_done(out_dir, platform, Step(iteration, ipe), boundary.last_metrics, state.stop_reason, started, compute)
    if platform.is_primary:  # --log_to: each sink reads the finished run's files (never per step)
        sinks.export(out_dir, getattr(platform, "log_to", ()))
    world.barrier()  # done.json is on disk for every rank that reads it next
    return boundary.last_metrics


def resume_from_checkpoint(out_dir: Path, platform: Platform, model: torch.nn.Module,
                           optimizer: torch.optim.Optimizer, hooks: Sequence[Hook], log: MetricLog,
                           running_loss: RunningLoss) -> Optional[int]:
    """Continue from checkpoint.pt where there is one: restore the model, optimizer, RNGs, hooks
    and running loss, drop the metrics logged after it, and return its iteration (whose boundary
    work is already on disk). Without one, remove the metrics of a run killed before its first
    checkpoint and return None. Stacked training's members resume through it too."""
    resumed = checkpoint.load_checkpoint(out_dir, model=model, optimizer=optimizer, device=platform.device, hooks=hooks)
    if resumed is None:
        if log.path.exists() and platform.is_primary:
            log.path.unlink()
        return None
    iteration, loss_sum, loss_count = resumed
    running_loss.restore(loss_sum, loss_count)
    log.truncate_after(iteration)
    return iteration


def count_compute(model: torch.nn.Module, test_loader, train_loader, start: int, end: int) -> Optional[dict]:
    """done.json's `compute` (training/compute.py) for the iterations from `start` to `end`,
    counted once on one test example: it costs one small forward pass under the FLOP counter,
    never a training step (None where the counter cannot trace the model)."""
    ipe = len(train_loader)
    seen = sum(global_batch_size(train_loader, i % ipe) for i in range(start, end))
    try:
        example = next(iter(test_loader.batches(0)))[0][0]
        return compute_record(model, example, seen)
    except Exception as error:  # a model the FLOP counter cannot trace must not cost a finished run
        print(f"open_prune: FLOPs not counted for {type(model).__name__}: {type(error).__name__}: {error}",
              file=sys.stderr)
        return None


def write_done(out_dir: Path, platform: Platform, final: Step, metrics: dict[str, float],
               stop_reason: Optional[str], started: float, compute: Optional[dict] = None,
               notes: Optional[dict] = None) -> None:
    """done.json marks the run finished; the checkpoint and any failed.json go (primary only).
    `notes` are further entries of the record, written last (stacked training's "stacked")."""
    if not platform.is_primary:
        return
    record = {"final_step": str(final), "final_iteration": final.iteration, "metrics": metrics,
              "seconds_this_session": round(time.time() - started, 3)}
    if platform.world.is_distributed:
        record["processes"] = platform.world.world_size
        record["sync_batchnorm"] = platform.sync_batchnorm
    if stop_reason is not None:
        record["stopped_early"] = stop_reason
    if compute is not None:
        record["compute"] = compute
    if notes:
        record.update(notes)
    write_json(record, out_dir / paths.DONE)
    (out_dir / paths.CHECKPOINT).unlink(missing_ok=True)
    (out_dir / paths.FAILED).unlink(missing_ok=True)


def global_batch_size(loader, index: int) -> int:
    """The number of examples in batch `index` of an epoch over all ranks (the last may be short)."""
    return min(loader.batch_size, loader.num_examples - index * loader.batch_size)


def check_world(loader, world: World) -> None:
    """Refuse, before anything is written, data that cannot be split over torchrun's processes."""
    if not world.is_distributed:
        return
    size, batch = world.world_size, loader.batch_size
    if batch % size:
        fitting = [n for n in range(1, size + 1) if batch % n == 0][-1]
        raise UserError(f"--batch_size={batch} is the global batch, split over the {size} processes of this torchrun, "
                        f"and {size} does not divide it: give a batch size divisible by {size}, or "
                        f"--nproc_per_node={fitting}")
    last = loader.num_examples % batch
    if 0 < last < size:
        raise UserError(f"the last batch of each epoch holds {last} example(s), fewer than the {size} processes: "
                        f"use fewer processes or a --batch_size that leaves a larger remainder of "
                        f"{loader.num_examples} examples")
    if not hasattr(loader, "sharded"):
        raise UserError(f"{type(loader).__name__} cannot be split across processes: run this dataset in one process")


def _record_failure(out_dir: Path, platform: Platform, step: Step, loss: float) -> None:
    """failed.json says why a run stopped, for the reading commands (the checkpoint stays)."""
    if platform.is_primary:
        write_json({"reason": "diverged", "step": str(step), "iteration": step.iteration, "train_loss": str(loss)},
                   out_dir / paths.FAILED)
