"""Helpers for the tests that start real processes (torchrun ranks, Slurm tasks, a run killed by
a signal): one torch thread everywhere, so that runs compared bitwise do the same arithmetic and
a loaded 2-core machine does not spin oversubscribed OpenMP threads; waiting on files; ports."""

from __future__ import annotations

import os
import socket
import sys
import time
from pathlib import Path
from typing import Callable, Optional

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
WORKER = str(REPO / "tests" / "cli_worker.py")


@pytest.fixture
def one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def env(**extra: str) -> dict[str, str]:
    """The environment of a child process: ours, one torch thread, plus `extra`."""
    return {**os.environ, "OMP_NUM_THREADS": "1", **extra}


def worker(*argv: str) -> list[str]:
    """The command line that runs `open_prune.py <argv>` in a fresh Python (tests/cli_worker.py)."""
    return [sys.executable, WORKER, *argv]


def wait_for(condition: Callable[[], Optional[object]], what: str, timeout: float = 180.0,
             alive: Callable[[], bool] = lambda: True, poll: float = 0.05) -> object:
    """Poll until `condition()` is truthy (returned) or fail saying `what` never happened."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = condition()
        if value:
            return value
        assert alive(), f"the process ended before {what}"
        time.sleep(poll)
    raise AssertionError(f"{what} did not happen within {timeout:.0f} s")


def evaluations(metrics: Path) -> int:
    """How many evaluations a metrics.jsonl holds so far."""
    try:
        return sum('"test_accuracy"' in line for line in metrics.read_text().splitlines())
    except OSError:
        return 0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
