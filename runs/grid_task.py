"""One run of a submitted grid, as submitit runs it in a Slurm task.

The task is the command line itself: calling it runs the command in the task's Python, and
submitit's checkpoint protocol (`checkpoint()`, called on SIGUSR1 or a time limit) resubmits the
same command line, which resumes from whatever its runs left on disk.

Signals and submitit's handler cooperate like this. During training, ours is installed over
submitit's: the signal checkpoints at the next step and training raises `Interrupted`, which
holds the handler it replaced. The task then passes the signal on to that handler, as if it
had only now arrived: for SIGUSR1 that is submitit's checkpoint-and-requeue (it calls
`checkpoint()`, requeues the Slurm task and exits); for SIGTERM, submitit only logs it, and the
task exits with 143 (Slurm requeues a preempted job itself where configured). Outside training
(a mask being scored, files being read) submitit's handler acts at once; every file is written
atomically and every stage resumes, so nothing is lost but the work in progress.
"""

from __future__ import annotations

import signal
import sys
from typing import Any

from foundations.errors import UserError
from runs.target import run_here
from training.interrupts import Interrupted


class GridTask:
    def __init__(self, argv: list[str]):
        self.argv = list(argv)

    def __call__(self) -> str:
        try:
            code = run_here(self.argv)
        except UserError as error:
            print(f"open_prune: error: {error}", file=sys.stderr, flush=True)
            raise SystemExit(2)
        except Interrupted as stopped:
            print(f"open_prune: {stopped}", file=sys.stderr, flush=True)
            _pass_on(stopped)
            raise SystemExit(stopped.exit_code)
        if code:
            raise SystemExit(code)
        return " ".join(self.argv)

    def checkpoint(self, *args: Any, **kwargs: Any) -> Any:
        """submitit's protocol: what to run when this task is requeued (the same command)."""
        from submitit.helpers import DelayedSubmission
        return DelayedSubmission(GridTask(self.argv))

    def __repr__(self) -> str:
        return f"GridTask({' '.join(self.argv)})"


def _pass_on(stopped: Interrupted) -> None:
    """Hand the signal to the handler that training's replaced (submitit's), now that the
    checkpoint is on disk. Python's default SIGINT handler (KeyboardInterrupt) is not called."""
    handler = stopped.handler_before
    if callable(handler) and handler is not signal.default_int_handler:
        handler(stopped.signum, None)
