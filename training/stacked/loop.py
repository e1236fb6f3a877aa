"""`train_stacked(jobs)`: `training.loop.train` for N compatible jobs (job.py) at once.

Each member keeps what the loop alone would have: its module (the weights are copied into it at
every boundary), its optimizer (its state is copied into it before a checkpoint), its schedule,
metrics log, running loss, progress, and the loop's own `BoundaryWork`, which logs, saves
weights and checkpoints in its run directory exactly as alone. Between boundaries the step is
one stacked forward, backward and optimizer step for all members; a member's mask multiplies its
gradients before the step and its weights after it, as MaskHook does (a sparse-training method
that changes the mask switches it after the steps it names, through its `change_mask` on the
member's slices), and a hook with a
stacked form of `after_optimizer_step` (a per-step pruning rule) then runs per member on that
member's views of the stacked weights, with its own state (job.py: which hooks).

Evaluation is one stacked pass for all members, and epoch-end checkpoints are spaced N times
further apart (boundary.py). Checkpoints are per member: every member's checkpoint.pt is an
ordinary one, written at the same step, so a killed stack resumes as a stack (each member from
its own file, bitwise where the stack left it) and each directory also resumes alone through
the ordinary loop. A member that diverges gets its failed.json and TrainingDiverged; a member whose
hook asks to stop (`state.request_stop`) ends at that evaluation with its done.json, as alone;
the others go on.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Callable, Optional

import torch
import torch.nn.functional as F

from foundations import paths
from foundations.step import Step
from platforms import sinks
from training.hooks import TrainState, overrides
from training.interrupts import Interrupted, catch_interrupts
from training.loop import Boundaries, RunningLoss, TrainingDiverged, count_compute, resume_from_checkpoint, write_done
from training.losses import Loss
from training.metrics import MetricLog
from training.optimizers import LRSchedule, build_optimizer
from training.progress import Progress
from training.stacked.batches import StackedBatches
from training.stacked.boundary import MemberBoundaryWork, evaluate_stacked, stack_checkpoint_spacing
from training.stacked.job import TrainJob, changes_its_mask, keeps_a_mask, steps_each_member
from training.stacked.model import StackedModel
from training.stacked.optim import StackedOptimizer


class Member:
    """One job's share of the stack: everything the loop alone keeps for it."""

    def __init__(self, job: TrainJob, index: int, members: int):
        self.job, self.index = job, index
        platform, h, device = job.platform, job.h, job.platform.device
        self.out_dir = job.out_dir
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.model = job.model.to(device).train()
        self.optimizer = build_optimizer(h, self.model)
        self.schedule = LRSchedule(h, job.ipe)
        self.loss_fn = Loss(h.loss, job.train_loader.task, job.train_loader.num_classes,
                            getattr(h, "label_smoothing", 0.0))
        self.log = MetricLog(self.out_dir / paths.METRICS)
        self.running_loss = RunningLoss(device, platform.world)
        self.done_at = resume_from_checkpoint(self.out_dir, platform, self.model, self.optimizer, job.hooks,
                                              self.log, self.running_loss)
        self.iteration = job.start_iteration if self.done_at is None else self.done_at
        self.state = TrainState(self.model, self.optimizer, self.iteration, job.ipe, self.out_dir,
                                start_iteration=job.start_iteration, end_iteration=job.end_iteration, log=self.log,
                                platform=platform, train_loader=job.train_loader, test_loader=job.test_loader)
        for hook in job.hooks:
            hook.on_start(self.state)  # MaskHook: the pruned weights are zeroed in the module
        self.progress = (Progress(self.out_dir.name, job.end_iteration - job.start_iteration,
                                  self.iteration - job.start_iteration, quiet=platform.quiet) if index == 0
                         else Silent())  # one progress line for the stack
        bounds = Boundaries(h, job.ipe, job.start_iteration, job.end_iteration, platform.checkpoint_every,
                            epoch_checkpoint_spacing=stack_checkpoint_spacing(members))
        self.boundary = MemberBoundaryWork(model=self.model, optimizer=self.optimizer, out_dir=self.out_dir,
                                           platform=platform, state=self.state, hooks=job.hooks, bounds=bounds,
                                           running_loss=self.running_loss, test_split=job.test_loader,
                                           loss_fn=self.loss_fn, schedule=self.schedule, log=self.log,
                                           progress=self.progress, done_at=self.done_at)
        self.failure: Optional[BaseException] = None
        self.result: Optional[dict] = None  # its final metrics, once it has ended (done.json written)

    @property
    def training(self) -> bool:
        """Neither diverged nor ended (a hook's request_stop ends a member at an evaluation)."""
        return self.failure is None and self.result is None

    @property
    def mask(self):
        """The member's mask (name -> bool tensor) as it stands, or None (read after the hooks'
        on_start)."""
        hooks = [hook for hook in self.job.hooks if keeps_a_mask(hook)]
        return hooks[0].mask if hooks else None

    @property
    def mask_changer(self):
        """The hook that changes the member's mask at some steps, or None."""
        return next((hook for hook in self.job.hooks if changes_its_mask(hook)), None)


class Silent:
    """The progress of every member but the first: nothing shown."""

    def update(self) -> None:
        pass

    def evaluated(self, iteration: int, step: str, metrics: dict) -> None:
        pass

    def close(self) -> None:
        pass


def member_losses(loss_fn: Loss, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Each member's mean training loss over its batch, (N,), as `loss_fn(outputs[i], targets[i])`."""
    members, batch = outputs.shape[:2]
    flat_outputs, flat_targets = outputs.flatten(0, 1), targets.flatten(0, 1)
    if loss_fn.name == "cross_entropy":
        per_example = F.cross_entropy(flat_outputs, flat_targets, reduction="none",
                                      label_smoothing=loss_fn.label_smoothing)
    else:
        per_example = loss_fn.squared_errors(flat_outputs, flat_targets)
    return per_example.view(members, batch).mean(dim=1)


def stacked_masks(members: Sequence[Member], stack: StackedModel) -> dict[str, torch.Tensor]:
    """name -> (N, ...) multipliers (1 where kept) of every weight some member prunes now or may
    prune later (a member whose mask changes)."""
    names = sorted({name for m in members if m.mask is not None for name in m.mask})
    masks = {}
    for name in names:
        weight = stack.params[name]
        rows = [m.mask[name].to(weight.device, weight.dtype) if m.mask is not None and name in m.mask
                else torch.ones_like(weight[0]) for m in members]
        changing = any(m.mask_changer is not None and name in m.mask for m in members)
        if changing or not all(bool(r.all()) for r in rows):
            masks[name] = torch.stack(rows)
    return masks


def train_stacked(jobs: Sequence[TrainJob], note: Optional[dict] = None) -> list[dict | BaseException]:
    """Train the jobs as one stack; returns each job's final metrics (what `train` returns), or the
    exception it ended with (TrainingDiverged). Interrupted (a signal) checkpoints every member and
    is raised. `note`, where given, goes into each member's done.json under "stacked", with the
    stack's size and the other members' directories."""
    members = [Member(job, i, len(jobs)) for i, job in enumerate(jobs)]
    first = members[0]
    ipe, end = first.job.ipe, first.job.end_iteration
    if len({m.iteration for m in members}) != 1:
        raise ValueError("stacked members must start (or resume) at the same iteration")
    iteration = first.iteration
    stack = StackedModel([m.model for m in members])
    params = stack.trainable_parameters()
    optimizer = StackedOptimizer([m.job.h for m in members], params)
    for m in members:
        optimizer.import_member(m.index, m.optimizer)
    masks = stacked_masks(members, stack)
    mask_pairs = [(stack.params[name], masks[name]) for name in masks]
    masked_grads = {stack.trainable.index(name): masks[name] for name in masks if name in stack.trainable}
    stepping = per_member_steps(members, stack)
    changing = [m for m in members if m.mask_changer is not None]
    running = torch.stack([m.running_loss.sum.detach().float().reshape(()) for m in members])
    _point_running_losses(members, running)
    batches = StackedBatches([m.job.train_loader for m in members])
    seeds = [m.job.data_order_seed for m in members]
    bounds = first.boundary.bounds
    loss_fn = first.loss_fn
    test_batches = StackedBatches([m.job.test_loader for m in members])
    evaluations: dict[int, list[dict]] = {}

    def evaluation(index: int) -> Callable[[], dict]:
        def metrics() -> dict:
            if iteration not in evaluations:  # once per boundary, for every member
                evaluations.clear()
                with stack.evaluating():
                    batches_ = test_batches.epoch(0, 0, [None] * len(jobs))
                    evaluations[iteration] = evaluate_stacked(stack.forward, batches_, loss_fn, len(jobs),
                                                              first.job.test_loader.num_examples)
            return evaluations[iteration][index]
        return metrics

    for m in members:
        m.boundary.evaluation = evaluation(m.index)
    started = time.time()
    epoch_batches = None

    def boundary(step: Step, checkpointing: bool) -> None:
        _write_back(members, stack, optimizer if checkpointing else None, step.iteration)
        for m in members:
            if m.training:
                m.state.iteration = step.iteration
                try:
                    m.boundary.run(step)
                except TrainingDiverged as error:
                    m.failure = error
                    m.progress.close()
                    continue
                if m.state.stop_reason is not None:  # a hook ended this member here, as the loop alone
                    _end_member(m, step.iteration, note, members, started)

    with catch_interrupts(first.job.platform.catch_signals) as interrupt:
        while True:
            step = Step(iteration, ipe)
            live = next((m for m in members if m.training), first)
            last_checkpoint = live.boundary.last_checkpoint
            checkpointing = bounds.checkpoints(iteration, last_checkpoint)
            if iteration != first.done_at and (bounds.evaluates(iteration) or bounds.saves_weights(iteration)
                                               or checkpointing):
                boundary(step, checkpointing)
            if iteration == end or not any(m.training for m in members):
                break
            if interrupt.signum is not None:
                _interrupt(members, stack, optimizer, step, interrupt)
            if epoch_batches is None or step.it == 0:
                epoch_batches = batches.epoch(step.ep, step.it, seeds)
            x, y = next(epoch_batches)
            lrs = [m.schedule(iteration) for m in members]
            losses = member_losses(loss_fn, stack.forward(x), y)
            grads = list(torch.autograd.grad(losses.sum(), params))
            dense_gradients = _dense_gradients(changing, stack, grads, iteration + 1)
            for k, multiplier in masked_grads.items():
                grads[k] = grads[k] * multiplier
            if stepping:
                _before_step_members(stepping, stack, grads, iteration)
            optimizer.step(grads, lrs)
            if mask_pairs:
                with torch.no_grad():
                    torch._foreach_mul_([p for p, _ in mask_pairs], [mk for _, mk in mask_pairs])
            _change_masks(changing, stack, optimizer, masks, dense_gradients, iteration + 1)
            _step_members(stepping, iteration + 1)
            iteration += 1
            running += losses.detach().float()
            for m in members:
                if m.training:
                    m.running_loss.count += 1
                    m.progress.update()

    for m in members:
        if m.training:
            _end_member(m, iteration, note, members, started)
    return [m.failure if m.failure is not None else m.result for m in members]


def _end_member(m: Member, iteration: int, note: Optional[dict], members: Sequence[Member], started: float) -> None:
    """What the loop does after its last step, for one member ending at `iteration` (the stack's
    end, or an evaluation where one of its hooks asked to stop): the hooks' on_end, done.json
    (with the stack's note and any stop reason), the sinks. Its slot in the stack trains on,
    unread, until the stack ends."""
    m.progress.close()
    for hook in m.job.hooks:
        hook.on_end(m.state)
    compute = count_compute(m.model, m.job.test_loader, m.job.train_loader, m.job.start_iteration, iteration)
    noted = None if note is None else {**note, "members": len(members),
                                       "with": [str(o.out_dir) for o in members if o is not m]}
    write_done(m.out_dir, m.job.platform, Step(iteration, m.job.ipe), m.boundary.last_metrics, m.state.stop_reason,
               started, compute, notes=None if noted is None else {"stacked": noted})
    sinks.export(m.out_dir, getattr(m.job.platform, "log_to", ()))
    m.result = m.boundary.last_metrics


def per_member_steps(members: Sequence[Member], stack: StackedModel) -> list[tuple]:
    """(member, its hooks with stacked per-step forms, its views of the stacked parameters and
    buffers) for every member that has such hooks. The views share the stack's storage, so a
    rule's in-place rewrite of a member's weight is a rewrite of the stack's."""
    stepping = []
    for m in members:
        hooks = [hook for hook in m.job.hooks if steps_each_member(hook)]
        if hooks:
            views = {name: t.detach()[m.index] for name, t in {**stack.params, **stack.buffers}.items()}
            stepping.append((m, hooks, views))
    return stepping


def _before_step_members(stepping: list[tuple], stack: StackedModel, grads: list[torch.Tensor],
                         iteration: int) -> None:
    """Before the stacked optimizer step: each member's hooks with a `before_optimizer_step`, in
    its order, on its slices of the (masked) gradients, as the loop alone calls them at iteration
    `iteration` (the steps taken so far)."""
    with torch.no_grad():
        for m, hooks, views in stepping:
            before = [hook for hook in hooks if overrides(hook, "before_optimizer_step")]
            if before and m.training:
                m.state.iteration = iteration
                gradients = {name: grads[k][m.index] for k, name in enumerate(stack.trainable)}
                for hook in before:
                    hook.before_stacked_optimizer_step(m.state, views, gradients)


def _step_members(stepping: list[tuple], iteration: int) -> None:
    """After the stacked optimizer step numbered `iteration`: each member's hooks, in its order,
    as the loop alone calls `after_optimizer_step` (diverged members are left alone)."""
    with torch.no_grad():
        for m, hooks, views in stepping:
            after = [hook for hook in hooks if overrides(hook, "after_optimizer_step")]
            if after and m.training:
                m.state.iteration = iteration
                for hook in after:
                    hook.after_stacked_optimizer_step(m.state, views)


def _dense_gradients(changing: Sequence[Member], stack: StackedModel, grads: list[torch.Tensor],
                     iteration: int) -> dict[int, dict[str, torch.Tensor]]:
    """member index -> its dense gradient (before the masks), for the members whose mask changes
    after this step and whose method reads it (RigL), as the hook alone copies it."""
    found = {}
    for m in changing:
        hook = m.mask_changer
        if m.training and hook.needs_gradient and hook.changes_at(iteration):
            found[m.index] = {name: grads[stack.trainable.index(name)][m.index].detach().clone()
                              for name in hook.mask if name in stack.trainable}
    return found


def _change_masks(changing: Sequence[Member], stack: StackedModel, optimizer: StackedOptimizer,
                  masks: dict[str, torch.Tensor], dense_gradients: dict, iteration: int) -> None:
    """After the stacked step numbered `iteration`: each member whose method changes its mask
    here switches it on its own slices (`change_mask`); the revived weights' optimizer state is
    zeroed, and the member's rows of the stacked multipliers, and its weights, follow the new
    mask, as the hook alone does."""
    with torch.no_grad():
        for m in changing:
            hook = m.mask_changer
            if not m.training or not hook.changes_at(iteration):
                continue
            m.state.iteration = iteration
            views = {name: stack.params[name].detach()[m.index] for name in hook.mask}
            revived = hook.change_mask(m.state, views, dense_gradients.get(m.index))
            for name, where in revived.items():
                if name in stack.trainable:
                    optimizer.reset_member(m.index, stack.trainable.index(name), where)
                masks[name][m.index].copy_(hook.mask[name])
                views[name].mul_(masks[name][m.index])


def _point_running_losses(members: Sequence[Member], running: torch.Tensor) -> None:
    """Each member's RunningLoss sums into its element of the stacked running loss (BoundaryWork
    reads and resets it there)."""
    for i, m in enumerate(members):
        m.running_loss.sum = running[i]


def _write_back(members: Sequence[Member], stack: StackedModel, optimizer: Optional[StackedOptimizer],
                iteration: int) -> None:
    """Every training member's weights into its own module, and, for a checkpoint, its optimizer
    state into its own optimizer (with the learning rate of the last step, as the loop leaves it).
    An ended member's module keeps its final weights."""
    for m in members:
        if not m.training:
            continue
        stack.write_member(m.index, m.model)
        if optimizer is not None:
            optimizer.export_member(m.index, m.optimizer, m.schedule(max(iteration - 1, 0)))


def _interrupt(members, stack, optimizer, step: Step, interrupt) -> None:
    """Checkpoint every member at `step`, then raise one Interrupted for the stack."""
    _write_back(members, stack, optimizer, step.iteration)
    raised: Optional[Interrupted] = None
    for m in members:
        if not m.training:
            continue
        try:
            m.boundary.raise_interrupted(step, interrupt.signum, interrupt.handler_before(interrupt.signum))
        except Interrupted as stopped:
            raised = stopped
    if raised is not None:
        raise Interrupted(f"{raised.args[0].split(':')[0]}: checkpointed the {len(members)} stacked runs at step "
                          f"{step}; rerun the same command to resume", raised.signum, raised.handler_before)
