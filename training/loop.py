"""The training loop: one loop for the trunk and every branch, driven by Steps.

Per step the loop does forward, loss (plus any hook's loss term), backward, hooks, optimizer step
and nothing else: no host sync. The host reads a number only at boundaries (evaluation, saved
steps, checkpoints), which is also where non-finite losses are caught, so every checkpoint on
disk holds a finite run. Boundaries are tested per iteration (never listed up front), so any
training length runs in constant memory.

Under torchrun (platforms/distributed.py) the same loop runs on every rank: the model is wrapped
in DistributedDataParallel for the step, each rank takes its slice of every global batch
(`--batch_size` stays the global batch), and its loss is its share of the global batch mean
times the world size, so DDP's average over the ranks is the single-process gradient (up to
rounding), also for a smaller last batch split unevenly. Evaluation sums every rank's share of the
test split, so all ranks log the same numbers; the running training loss is pooled only at
boundaries; signals are agreed
on (SignalVote) so that every rank checkpoints and stops at the same step; only rank 0 writes.
Hooks see the bare module (`state.model`, never the DDP wrapper) and the whole, unsharded loaders:
they run on every rank with the same inputs and so stay in step; a hook that writes files should
do so only where `state.platform.is_primary`.
"""

from __future__ import annotations

import contextlib
import signal
import time
from pathlib import Path
from typing import Optional, Sequence

import torch

from foundations.bundles import TrainingHparams
from foundations import paths
from foundations.errors import UserError
from foundations.step import Step
from platforms.distributed import World, data_parallel
from platforms.platform import Platform
from platforms.storage import write_json
from training import checkpoint
from training.hooks import Hook, TrainState, overrides
from training.interrupts import Interrupted, catch_interrupts
from training.losses import Loss, evaluate
from training.metrics import MetricLog
from training.optimizers import LRSchedule, build_optimizer
from training.progress import Progress



class TrainingDiverged(UserError):
    """The loss became NaN or infinite."""


MIN_STEPS_BETWEEN_EPOCH_CHECKPOINTS = 100


class Boundaries:
    """Which iterations of [start, end] evaluate, save the weights, or checkpoint."""

    def __init__(self, h: TrainingHparams, ipe: int, start: int, end: int, checkpoint_every: Optional[str]):
        self.ipe, self.start, self.end = ipe, start, end
        self.eval_every = Step.parse(h.eval_every, ipe, "eval_every").iteration if h.eval_every else ipe
        self.checkpoint_every = Step.parse(checkpoint_every, ipe, "checkpoint_every").iteration if checkpoint_every else 0
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
        MIN_STEPS_BETWEEN_EPOCH_CHECKPOINTS after the `last` checkpoint (so a task with one step
        per epoch, like xor, does not spend its time writing checkpoints). A function of the
        iterations alone, so every rank decides alike."""
        if not self.start < iteration < self.end:
            return False
        if self.checkpoint_every and iteration % self.checkpoint_every == 0:
            return True
        return iteration % self.ipe == 0 and (last is None or iteration - last >= MIN_STEPS_BETWEEN_EPOCH_CHECKPOINTS)


def train(model: torch.nn.Module, h: TrainingHparams, train_loader, test_loader, out_dir: Path, *,
          platform: Platform, data_order_seed: int, start: Optional[Step] = None,
          end: Optional[Step] = None, hooks: Sequence[Hook] = ()) -> dict[str, float]:
    """Train `model` in place from `start` (default 0) to `end` (default training_steps), writing
    metrics, saved weights, checkpoints and done.json to `out_dir`. Resumes from checkpoint.pt.
    Returns the final evaluation metrics."""
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
    loss_fn = Loss(h.loss, train_loader.task, train_loader.num_classes)
    bounds = Boundaries(h, ipe, start.iteration, end.iteration, platform.checkpoint_every)
    log = MetricLog(out_dir / paths.METRICS, enabled=platform.is_primary)
    autocast = (torch.autocast("cuda", dtype=torch.bfloat16) if h.precision == "bf16" and device.type == "cuda"
                else contextlib.nullcontext())

    loss_sum = torch.zeros((), device=device)  # this rank's part of the running training-loss sum
    loss_count = 0
    iteration = start.iteration
    done_at = None  # a resumed checkpoint's iteration: its boundary work is already on disk
    last_checkpoint: Optional[int] = None
    resumed = checkpoint.load_checkpoint(out_dir, model=model, optimizer=optimizer, device=device, hooks=hooks)
    if resumed is not None:
        iteration, loss_sum, loss_count = resumed
        if not world.is_primary:
            loss_sum.zero_()  # the checkpoint holds the total over the ranks: rank 0 carries it
        done_at = last_checkpoint = iteration
        log.truncate_after(iteration)
    elif log.path.exists() and platform.is_primary:
        log.path.unlink()  # metrics from a run killed before its first checkpoint

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
    vote = world.signal_vote() if parallel else None
    last_metrics: dict[str, float] = {}
    batches = None
    started = time.time()

    def pooled_loss() -> torch.Tensor:
        """The running training-loss sum over every rank (a collective: all ranks call it)."""
        return world.sum_(loss_sum.clone()) if parallel else loss_sum

    def save_checkpoint(loss_total: torch.Tensor) -> None:
        if platform.is_primary:
            checkpoint.save_checkpoint(out_dir, model=model, optimizer=optimizer, iteration=iteration,
                                       loss_sum=loss_total, loss_count=loss_count, hooks=hooks)

    with catch_interrupts(platform.catch_signals) as interrupt:
        if vote is not None:
            vote.cast(interrupt.signum)
        while True:
            state.iteration = iteration
            step = Step(iteration, ipe)
            stopping = state.stop_reason is not None  # a hook asked to end here: evaluate and save
            evaluating = stopping or bounds.evaluates(iteration)
            saving = bounds.saves_weights(iteration)
            checkpointing = bounds.checkpoints(iteration, last_checkpoint)
            if iteration != done_at and (evaluating or saving or checkpointing):
                loss_total = pooled_loss()
                if loss_count and not torch.isfinite(loss_total):
                    _record_failure(out_dir, platform, step, loss_total.item())
                    raise TrainingDiverged(f"the training loss became {loss_total.item()} before step {step}; "
                                           f"the last good checkpoint is kept in {out_dir}: lower --lr and rerun")
                if evaluating:
                    world.broadcast_buffers(model)
                    metrics = world.sum(evaluate(model, test_split, loss_fn))
                    if loss_count:
                        metrics["train_loss"] = (loss_total / loss_count).item()
                        loss_sum.zero_()
                        loss_total = torch.zeros_like(loss_sum)
                        loss_count = 0
                    metrics["lr"] = schedule(iteration)
                    for hook in hooks:
                        hook.at_eval(state, metrics)
                    log.write(iteration, str(step), metrics)
                    last_metrics = metrics
                    progress.evaluated(iteration, str(step), metrics)
                if state.stop_reason is not None:
                    saving, checkpointing = True, False
                if saving and platform.is_primary:
                    checkpoint.save_model(model, out_dir, step)
                    for hook in hooks:
                        hook.at_save(state)
                if checkpointing:
                    save_checkpoint(loss_total)
                    last_checkpoint = iteration
            if iteration == end.iteration or state.stop_reason is not None:
                break
            signum = vote.result() if vote is not None else interrupt.signum
            if signum is not None:  # every rank takes this branch at the same step
                if iteration != done_at and not checkpointing:
                    save_checkpoint(pooled_loss())
                progress.close()
                name = signal.Signals(signum).name
                raise Interrupted(f"{name} received: checkpointed {out_dir} at step {step}; "
                                  f"rerun the same command to resume", signum, interrupt.handler_before(signum))

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
            loss_sum += task_loss.detach().float()
            loss_count += 1
            progress.update()
            if vote is not None:
                vote.cast(interrupt.signum)
        if vote is not None:
            vote.result()  # training ended: the last vote is moot

    del forward  # DDP's gradient hooks go with the wrapper
    progress.close()
    for hook in hooks:
        hook.on_end(state)
    final = Step(iteration, ipe)
    if platform.is_primary:
        record = {"final_step": str(final), "final_iteration": iteration, "metrics": last_metrics,
                  "seconds_this_session": round(time.time() - started, 3)}
        if parallel:
            record["processes"] = world.world_size
            record["sync_batchnorm"] = platform.sync_batchnorm
        if state.stop_reason is not None:
            record["stopped_early"] = state.stop_reason
        write_json(record, out_dir / paths.DONE)
        (out_dir / checkpoint.CHECKPOINT).unlink(missing_ok=True)
        (out_dir / paths.FAILED).unlink(missing_ok=True)
    world.barrier()  # done.json is on disk for every rank that reads it next
    return last_metrics


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
