"""A lock per run directory, so two processes never train the same run at once."""

from __future__ import annotations

import contextlib
import fcntl
import os
import sys
from pathlib import Path
from typing import Iterator

from foundations.errors import UserError
from platforms.distributed import current_world


@contextlib.contextmanager
def run_lock(run_dir: Path, wait: bool = False) -> Iterator[None]:
    """Hold an exclusive fcntl lock on `<run_dir>/.lock` for the duration of the block.

    If another process holds it: wait for it when `wait`, else raise UserError. The lock dies
    with its process, so a killed run never leaves a stale lock behind. Under torchrun the
    ranks of one run are one holder: rank 0 takes the lock, and if it cannot, every rank raises.
    """
    with contextlib.ExitStack() as held:
        current_world().on_primary(lambda: held.enter_context(_flock(Path(run_dir), wait)))
        yield


@contextlib.contextmanager
def _flock(run_dir: Path, wait: bool) -> Iterator[None]:
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / ".lock"
    with open(path, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            if not wait:
                raise UserError(f"{run_dir} is being trained by {holder}; wait for it to finish, then rerun "
                                f"(a finished run is skipped)")
            print(f"waiting for {holder} to finish {run_dir} ...", file=sys.stderr)
            fcntl.flock(handle, fcntl.LOCK_EX)
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()} on {os.uname().nodename}")
        handle.flush()
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
