"""`submit --local --stack[=N|auto]`: the runs of a grid, trained stacked where they can be.

Every run of the grid runs its own command (`run_here`) in a thread of this process, so each
does exactly what it does alone: it locates, checks and opens its directory, scores its mask,
writes its markers. Only its calls of `training.loop.train` are held back: each run's thread runs
within `training.loop.dispatching_to(coordinator.take, coordinator.together)`, the loop's
extension point, so `train` hands the call, as a TrainJob, to the coordinator and waits. The
main thread sets no handler: there `train` is the loop itself. When every live run waits (or has
ended), the coordinator groups the waiting jobs by `stack_key`, trains each group stacked in
chunks of the stack size (training/stacked/), one by one in the main thread (which owns the
signals), and hands each run its result. So replicates of a trunk stack; oneshot fractions x
strategies x replicates stack (after the distinct trunks, trained first as their own stack); IMP's
replicates stack level by level. A run's trainings that do not depend on one another
(`train_together`: the chaos-causality retrainings, one init under four masks; a control's
levels) run as runs of their own, so they stack too. A job that cannot stack, or has nobody to
stack with, trains alone with a line saying why.
"""

from __future__ import annotations

import contextvars
import shlex
import sys
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, Optional

import torch

from foundations.errors import UserError
from foundations.torch_threads import torch_threads
from platforms.platform import STACK_AUTO, Platform, check_stack
from runs.plan import Run
from runs.target import parse_target, run_here
from training.interrupts import Interrupted
from training.loop import dispatching_to, is_dispatching
from training.stacked.job import TrainJob, stack_key
from training.stacked.loop import train_stacked

AUTO = STACK_AUTO
CPU_STACK_LIMIT = 64  # above this, a CPU stack gains nothing more per run
STALL_SECONDS = 300.0  # no run arrived or ended this long (one stuck on a lock): train what waits


def parse_stack_size(text: str) -> Optional[int]:
    """--stack's value: a positive count, or None for `auto`."""
    check_stack(text)
    return None if text == AUTO else int(text)


def auto_stack_size(job: TrainJob) -> int:
    """How many members fit: half the device's free memory over an estimate of one member's
    (weights, gradients and two optimizer states, plus each layer's activations at the batch size,
    twice for the backward), at most CPU_STACK_LIMIT on a CPU."""
    model, device = job.model, job.platform.device
    weights = sum(p.numel() * p.element_size() for p in model.parameters())
    activations = [0]

    def count(_module, _inputs, output):
        if isinstance(output, torch.Tensor):
            activations[0] += output.numel() * output.element_size()

    handles = [m.register_forward_hook(count) for m in model.modules() if not list(m.children())]
    try:
        x, _ = next(iter(job.train_loader.batches(0, order_seed=None)))
        with torch.no_grad():
            was = model.training
            model.eval()
            model.to(device)(x[:1])
            model.train(was)
    except Exception:
        activations[0] = weights
    finally:
        for handle in handles:
            handle.remove()
    member = 4 * weights + 2 * activations[0] * job.train_loader.batch_size
    if device.type == "cuda":
        free = torch.cuda.mem_get_info(device)[0]
        return max(1, int(0.5 * free // max(member, 1)))
    return max(1, min(CPU_STACK_LIMIT, int(0.5 * _available_host_memory() // max(member, 1))))


def _available_host_memory() -> int:
    try:
        with open("/proc/meminfo") as info:
            for line in info:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 8 << 30


class _Pending:
    def __init__(self, job: TrainJob):
        self.job = job
        self.finished = False
        self.result: Any = None
        self.error: Optional[BaseException] = None


class Coordinator:
    """Runs thunks in threads; their `train` calls come here and are trained in groups."""

    def __init__(self, size: Optional[int], say: Callable[[str], None] = print):
        self.size, self.say = size, say
        self.condition = threading.Condition()
        self.waiting: list[_Pending] = []
        self.alive = 0
        self.interrupted: Optional[Interrupted] = None
        self.stacks = 0
        # Only the run holding the baton runs (it lets go while it waits for its training), so the
        # runs see the process as they would one after another. They cannot run at once: drawing
        # an initialization seeds torch's process-wide CPU generator (models/registry.py, under
        # fork_rng, which restores it after), so a concurrent draw would take another run's seed.
        # (The root's write probe is per thread, and the run locks exclude threads too.)
        self.baton = threading.Lock()

    # ---- in the runs' threads -----------------------------------------------------------------
    def submit(self, job: TrainJob) -> dict:
        pending = _Pending(job)
        with self.condition:
            if self.interrupted is not None:
                raise self.interrupted
            self.waiting.append(pending)
            self.condition.notify_all()
        self.baton.release()  # another run goes on while this one waits
        try:
            with self.condition:
                while not pending.finished:
                    self.condition.wait()
        finally:
            self.baton.acquire()
        if pending.error is not None:
            raise pending.error
        return pending.result

    def take(self, *args: Any, **kwargs: Any) -> dict:
        """The dispatch handler of the runs' threads (training.loop.dispatching_to): a `train(...)`
        call, with `train`'s own arguments, held as a TrainJob until its stack has trained."""
        return self.submit(TrainJob.from_call(*args, **kwargs))

    def together(self, thunks: Sequence[Callable[[], Any]]) -> list[Any]:
        """`training.loop.train_together` in a run's thread: each thunk runs as a run of its own
        (in a thread, with this thread's context), so that their trainings wait, and stack,
        together; this thread hands its place to them until the last has ended. Returns each
        thunk's result or the exception it raised."""
        outcomes: list[Any] = [None] * len(thunks)
        remaining = [len(thunks)]

        def ended() -> None:  # the last child gives the place back to its parent, so alive never dips
            remaining[0] -= 1
            if remaining[0]:
                self.alive -= 1

        with self.condition:
            self.alive += len(thunks) - 1
        threads = [self._start(i, thunk, outcomes, ended, contextvars.copy_context()) for i, thunk in enumerate(thunks)]
        self.baton.release()
        try:
            for thread in threads:
                thread.join()
        finally:
            self.baton.acquire()
        return outcomes

    def _start(self, index: int, thunk: Callable[[], Any], outcomes: list, ended: Callable[[], None],
               context: Optional[contextvars.Context] = None) -> threading.Thread:
        """A thread that runs `thunk` when it holds the baton, with `train` dispatched here; its
        result (or exception) goes to outcomes[index]; `ended` runs under the condition after."""
        def member() -> None:
            self.baton.acquire()
            try:
                with dispatching_to(self.take, self.together):  # this thread's context only
                    outcomes[index] = thunk()
            except BaseException as error:  # reported by the caller, run by run
                outcomes[index] = error
            finally:
                self.baton.release()
                with self.condition:
                    ended()
                    self.condition.notify_all()

        target = member if context is None else (lambda: context.run(member))
        thread = threading.Thread(target=target, daemon=True)
        thread.start()
        return thread

    # ---- in the main thread -------------------------------------------------------------------
    def run(self, thunks: Sequence[Callable[[], Any]]) -> list[Any]:
        """Run every thunk in its own thread, training their jobs stacked; returns each thunk's
        result or the exception it raised."""
        outcomes: list[Any] = [None] * len(thunks)

        def ended() -> None:
            self.alive -= 1

        self.alive = len(thunks)
        threads = [self._start(i, thunk, outcomes, ended) for i, thunk in enumerate(thunks)]
        while True:
            batch = self._next_batch()
            if batch is None:
                break
            self._train(batch)
        for thread in threads:
            thread.join()
        return outcomes

    def _next_batch(self) -> Optional[list[_Pending]]:
        """The jobs to train now: all that wait once every live run waits (None: all ended)."""
        with self.condition:
            last_change, seen = time.monotonic(), (-1, -1)
            while True:
                if self.alive == 0 and not self.waiting:
                    return None
                if self.waiting and len(self.waiting) >= self.alive:
                    break
                if (len(self.waiting), self.alive) != seen:
                    seen, last_change = (len(self.waiting), self.alive), time.monotonic()
                elif self.waiting and time.monotonic() - last_change > STALL_SECONDS:
                    break
                self.condition.wait(timeout=0.2)
            batch, self.waiting = self.waiting, []
            return batch

    def _train(self, batch: list[_Pending]) -> None:
        groups: dict[Any, list[_Pending]] = {}
        alone: list[tuple[_Pending, str]] = []
        for pending in sorted(batch, key=lambda p: str(p.job.out_dir)):  # stacks in a fixed order
            key, why = stack_key(pending.job)
            if key is None:
                alone.append((pending, why))
            else:
                groups.setdefault(key, []).append(pending)
        for members in groups.values():
            if len(members) == 1:
                alone.append((members[0], "nothing to stack it with"))
                continue
            size = self.size or auto_stack_size(members[0].job)
            for lo in range(0, len(members), size):
                chunk = members[lo:lo + size]
                if len(chunk) == 1:
                    alone.append((chunk[0], "the last of its group"))
                else:
                    self._train_stack(chunk)
        for pending, why in alone:
            self.say(f"stack: {pending.job.out_dir} trains alone: {why}")
            self._finish([pending], lambda: [pending.job.call_alone()])

    def _finish(self, chunk: list[_Pending], work: Callable[[], list]) -> None:
        """Run `work` (training the chunk's jobs) here with the jobs' --num_threads, and hand each
        job its result: torch's thread count is per thread (OpenMP's), and each run set its own
        in its own thread, not in this one."""
        with torch_threads(chunk[0].job.platform.num_threads):
            self._hand_over(chunk, work)

    def _train_stack(self, chunk: list[_Pending]) -> None:
        self.stacks += 1
        self.say(f"stack {self.stacks}: training {len(chunk)} runs together "
                 f"({chunk[0].job.out_dir} and {len(chunk) - 1} more)")
        note = {"stack": self.stacks, "device": str(chunk[0].job.platform.device)}
        initial = [{k: v.detach().clone() for k, v in p.job.model.state_dict().items()} for p in chunk]

        def work() -> list:
            try:
                return train_stacked([p.job for p in chunk], note=note)
            except (Interrupted, UserError):
                raise
            except Exception as error:  # a network the stacked forward cannot take: train them alone
                self.say(f"stack {self.stacks} failed ({type(error).__name__}: {str(error)[:200]}); "
                         f"its {len(chunk)} runs train alone")
                results = []
                for pending, state in zip(chunk, initial):
                    pending.job.model.load_state_dict(state)  # resumed from its checkpoint, if one was written
                    results.append(_alone_or_error(pending.job))
                return results

        self._finish(chunk, work)

    def _hand_over(self, chunk: list[_Pending], work: Callable[[], list]) -> None:
        results: list[Any]
        try:
            if self.interrupted is not None:
                raise self.interrupted
            results = work()
        except Interrupted as stopped:
            self.interrupted = stopped
            results = [stopped] * len(chunk)
        except Exception as error:
            results = [error] * len(chunk)
        with self.condition:
            for pending, result in zip(chunk, results):
                if isinstance(result, BaseException):
                    pending.error = result
                else:
                    pending.result = result
                pending.finished = True
            self.condition.notify_all()


def _alone_or_error(job: TrainJob) -> Any:
    try:
        return job.call_alone()
    except Interrupted:
        raise
    except Exception as error:
        return error


def run_with_stacks(command: Callable[[], int], platform: Platform) -> int:
    """One command with `--stack`: its trainings that do not depend on one another
    (`train_together`) train as stacks. Within a stack's coordinator already (`submit --local
    --stack`) it runs as it is: the grid's coordinator takes those trainings."""
    if is_dispatching():
        return command()
    if platform.world.is_distributed:
        print("--stack: under torchrun each training is data-parallel already; they train one after another",
              flush=True)
        return command()

    def thunk() -> int:
        with torch_threads(platform.num_threads):  # this run's thread, as the command's own
            return command()

    coordinator = Coordinator(parse_stack_size(platform.stack))
    [outcome] = coordinator.run([thunk])
    if isinstance(outcome, BaseException):
        raise outcome
    return outcome


def run_stacked(todo: list[Run], skipped: int, size: Optional[int]) -> int:
    """`submit --local --stack`: the runs to do, trunks first (for a branch grid), stacked."""
    how = f"stacks of up to {size}" if size else "stacks sized to the free memory"
    print(f"{len(todo)} runs to do here, in {how} ({skipped} already done)", flush=True)
    target, _ = parse_target(todo[0].argv, "submit --")
    coordinator = Coordinator(size)
    if target.module is not None:
        trunks: dict[Any, Callable[[], Any]] = {}
        for run in todo:
            branch, _ = target.parse(list(run.argv[len(target.words):]))
            if not branch.trunk.is_done:
                trunks.setdefault(branch.trunk.dir, _trunk_thunk(target, list(run.argv[len(target.words):])))
        if trunks:
            print(f"first the {len(trunks)} trunk(s) the runs branch from", flush=True)
            failed = _report(coordinator.run(list(trunks.values())), [f"trunk {d}" for d in trunks])
            if coordinator.interrupted is not None:
                raise coordinator.interrupted
            if failed:
                return 1
    outcomes = coordinator.run([_run_thunk(run.argv) for run in todo])
    failed = _report(outcomes, [shlex.join(["python", "open_prune.py", *run.argv]) for run in todo])
    if coordinator.interrupted is not None:
        raise coordinator.interrupted
    return 1 if failed else 0


def _trunk_thunk(target, flags: list[str]) -> Callable[[], Any]:
    def thunk():
        branch, _ = target.parse(flags)
        return branch.trunk.run(wait_for_lock=True)
    return thunk


def _run_thunk(argv: list[str]) -> Callable[[], Any]:
    return lambda: run_here(list(argv))


def _report(outcomes: Sequence[Any], names: Sequence[str]) -> int:
    """Print each run that failed, with why; the number of them."""
    failed = 0
    for outcome, name in zip(outcomes, names):
        if isinstance(outcome, Interrupted):  # said once, by the caller
            failed += 1
            continue
        if isinstance(outcome, BaseException) or (isinstance(outcome, int) and outcome):
            failed += 1
            why = f"{type(outcome).__name__}: {outcome}" if isinstance(outcome, BaseException) else f"exit {outcome}"
            print(f"open_prune: failed: {name}: {why}", file=sys.stderr, flush=True)
    return failed
