"""The training loop: one loop for the trunk and every branch, driven by Steps.

Per step the loop does forward, backward, hooks, optimizer step and nothing else: no host sync.
The host reads a number only at boundaries (evaluation, saved steps, epoch checkpoints), which is
also where non-finite losses are caught, so every checkpoint on disk holds a finite run.
"""

from __future__ import annotations

import contextlib
import sys
import time
from pathlib import Path
from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from tqdm import tqdm

from foundations.bundles import TrainingHparams
from foundations.errors import UserError
from foundations.step import Step
from platforms.platform import Platform
from platforms.storage import write_json
from training import checkpoint
from training.hooks import Hook, TrainState
from training.metrics import MetricLog
from training.optimizers import LRSchedule, build_optimizer


class TrainingDiverged(UserError):
    """The loss became NaN or infinite."""


def evaluate(model: torch.nn.Module, loader, num_classes: int) -> dict[str, float]:
    """Test loss, top-1 and (for more than 10 classes) top-5 accuracy, in one host sync."""
    was_training = model.training
    model.eval()
    loss_sum = torch.zeros((), device=next(model.parameters()).device, dtype=torch.float64)
    top1 = torch.zeros_like(loss_sum)
    top5 = torch.zeros_like(loss_sum)
    with torch.no_grad():
        for x, y in loader.batches(0):
            logits = model(x).float()
            loss_sum += F.cross_entropy(logits, y, reduction="sum")
            top1 += (logits.argmax(dim=1) == y).sum()
            if num_classes > 10:
                top5 += (logits.topk(5, dim=1).indices == y[:, None]).any(dim=1).sum()
    model.train(was_training)
    n = loader.num_examples
    values = torch.stack([loss_sum, top1, top5]).div(n).tolist()
    metrics = {"test_loss": values[0], "test_accuracy": values[1]}
    if num_classes > 10:
        metrics["test_top5_accuracy"] = values[2]
    return metrics


def _boundaries(h: TrainingHparams, ipe: int, start: int, end: int) -> tuple[set[int], set[int]]:
    """Iterations at which to evaluate, and at which to save the weights."""
    every = Step.parse(h.eval_every, ipe, "eval_every").iteration if h.eval_every else ipe
    if every <= 0:
        raise UserError("--eval_every must be at least 1it")
    first_multiple = -(-start // every) * every  # evaluations line up with the trunk's
    evals = {start, end} | set(range(first_multiple, end + 1, every))
    saves = {start, end} | {s.iteration for s in Step.parse_list(h.weight_save_steps, ipe, "weight_save_steps")
                            if start <= s.iteration <= end}
    return evals, saves


def train(model: torch.nn.Module, h: TrainingHparams, train_loader, test_loader, out_dir: Path, *,
          platform: Platform, data_order_seed: int, start: Optional[Step] = None,
          end: Optional[Step] = None, hooks: Sequence[Hook] = ()) -> dict[str, float]:
    """Train `model` in place from `start` (default 0) to `end` (default training_steps), writing
    metrics, saved weights, checkpoints and done.json to `out_dir`. Resumes from checkpoint.pt.
    Returns the final evaluation metrics."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    ipe = len(train_loader)
    start = start or Step.zero(ipe)
    end = end or Step.parse(h.training_steps, ipe, "training_steps")
    if start > end:
        raise UserError(f"the start step {start} is after the end of training {end}")
    device = platform.device
    model.to(device).train()
    optimizer = build_optimizer(h, model)
    schedule = LRSchedule(h, ipe)
    evals, saves = _boundaries(h, ipe, start.iteration, end.iteration)
    log = MetricLog(out_dir / "metrics.jsonl", enabled=platform.is_primary)
    autocast = (torch.autocast("cuda", dtype=torch.bfloat16) if h.precision == "bf16" and device.type == "cuda"
                else contextlib.nullcontext())

    loss_sum = torch.zeros((), device=device)
    loss_count = 0
    iteration = start.iteration
    done_at = None  # a resumed checkpoint's iteration: its boundary work is already on disk
    resumed = checkpoint.load_checkpoint(out_dir, model=model, optimizer=optimizer, device=device)
    if resumed is not None:
        iteration, loss_sum, loss_count = resumed
        done_at = iteration
        log.truncate_after(iteration)
    elif log.path.exists():
        log.path.unlink()  # metrics from a run killed before its first checkpoint

    state = TrainState(model, optimizer, iteration, ipe, out_dir)
    for hook in hooks:
        hook.on_start(state)
    show = not platform.quiet and sys.stderr.isatty()
    bar = tqdm(total=end.iteration - start.iteration, initial=iteration - start.iteration, disable=not show,
               dynamic_ncols=True, leave=False, desc=out_dir.name)
    last_metrics: dict[str, float] = {}
    batches = None
    started = time.time()

    while True:
        state.iteration = iteration
        step = Step(iteration, ipe)
        boundary_eval, boundary_save = iteration in evals, iteration in saves
        boundary_checkpoint = iteration % ipe == 0 and start.iteration < iteration < end.iteration
        if iteration != done_at and (boundary_eval or boundary_save or boundary_checkpoint):
            if loss_count and not torch.isfinite(loss_sum):
                raise TrainingDiverged(f"the training loss became {loss_sum.item()} before step {step}; "
                                       f"the last good checkpoint is kept in {out_dir}: lower --lr and rerun")
            if boundary_eval:
                metrics = evaluate(model, test_loader, train_loader.num_classes)
                if loss_count:
                    metrics["train_loss"] = (loss_sum / loss_count).item()
                    loss_sum.zero_()
                    loss_count = 0
                metrics["lr"] = schedule(iteration)
                log.write(iteration, str(step), metrics)
                last_metrics = metrics
                bar.set_postfix(step=str(step), loss=f"{metrics.get('train_loss', float('nan')):.3f}",
                                acc=f"{metrics['test_accuracy']:.4f}")
                for hook in hooks:
                    hook.at_eval(state, metrics)
            if boundary_save and platform.is_primary:
                checkpoint.save_model(model, out_dir, step)
                for hook in hooks:
                    hook.at_save(state)
            if boundary_checkpoint and platform.is_primary:
                checkpoint.save_checkpoint(out_dir, model=model, optimizer=optimizer, iteration=iteration,
                                           loss_sum=loss_sum, loss_count=loss_count)
        if iteration == end.iteration:
            break

        if batches is None or step.it == 0:
            batches = train_loader.batches(step.ep, start=step.it, order_seed=data_order_seed)
        x, y = next(batches)
        schedule.apply(optimizer, iteration)
        with autocast:
            loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        for hook in hooks:
            hook.before_optimizer_step(state)
        optimizer.step()
        for hook in hooks:
            hook.after_optimizer_step(state)
        loss_sum += loss.detach().float()
        loss_count += 1
        iteration += 1
        bar.update(1)

    bar.close()
    for hook in hooks:
        hook.on_end(state)
    if platform.is_primary:
        write_json({"final_step": str(end), "final_iteration": end.iteration, "metrics": last_metrics,
                    "seconds_this_session": round(time.time() - started, 3)}, out_dir / "done.json")
        (out_dir / checkpoint.CHECKPOINT).unlink(missing_ok=True)
    return last_metrics
