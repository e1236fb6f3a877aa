"""Preemption: SIGTERM, SIGUSR1 (Slurm's warning before a time limit) and SIGINT end training at
the next step with a checkpoint, instead of losing everything since the last epoch.

While `catch_interrupts()` is active a signal only sets a flag; the loop looks at the flag once
per step (an attribute read; under torchrun a vote of all ranks, so they stop together),
checkpoints where it stands, and raises `Interrupted`. A second SIGINT while the first is pending
interrupts at once (the usual Ctrl-C twice).

The handler that was installed before ours is kept with the exception (`handler_before`): a
caller that runs training under another protocol passes the signal on to it once the checkpoint
is on disk. That is how a Slurm task submitted through submitit requeues itself: submitit's own
SIGUSR1 handler (its checkpoint-and-requeue) runs after ours has checkpointed
(runs/grid_task.py).
"""

from __future__ import annotations

import contextlib
import signal
import threading
from typing import Any, Iterator, Optional

SIGNALS = (signal.SIGTERM, signal.SIGUSR1, signal.SIGINT)


class Interrupted(Exception):
    """Training stopped on a signal after writing a checkpoint; rerunning the command resumes."""

    def __init__(self, message: str, signum: int, handler_before: Any = None):
        super().__init__(message)
        self.signum = signum
        self.handler_before = handler_before  # what handled `signum` before training caught it

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


class InterruptFlag:
    def __init__(self) -> None:
        self.signum: Optional[int] = None
        self.previous: dict[int, Any] = {}

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name if self.signum else ""

    def handler_before(self, signum: int) -> Any:
        """The handler of `signum` that ours replaced (a callable, SIG_DFL, SIG_IGN or None)."""
        return self.previous.get(signum)


@contextlib.contextmanager
def catch_interrupts(enabled: bool = True) -> Iterator[InterruptFlag]:
    """Turn the signals into a flag for the duration of the block (main thread only; elsewhere,
    or when not `enabled`, the flag simply never rises)."""
    flag = InterruptFlag()
    if not enabled or threading.current_thread() is not threading.main_thread():
        yield flag
        return

    def handler(signum, frame):
        if flag.signum == signal.SIGINT and signum == signal.SIGINT:
            raise KeyboardInterrupt
        flag.signum = signum

    flag.previous = {signum: signal.signal(signum, handler) for signum in SIGNALS}
    try:
        yield flag
    finally:
        for signum, old in flag.previous.items():
            signal.signal(signum, old)
