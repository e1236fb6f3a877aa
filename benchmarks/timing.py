"""Wall-clock timing for the benchmarks, with the device synchronized around what is timed.

Ratios against a reference are measured in the same process, the two run alternately, so that
load from other processes on the machine hits both alike.
"""

from __future__ import annotations

import statistics
import time
from typing import Any, Callable, Optional

import torch


def synchronize(device: Optional[torch.device]) -> None:
    if device is not None and device.type == "cuda":
        torch.cuda.synchronize(device)


def timed_call(fn: Callable[[], Any], device: Optional[torch.device] = None) -> tuple[float, Any]:
    """(seconds, result) of one call of `fn`."""
    synchronize(device)
    start = time.perf_counter()
    result = fn()
    synchronize(device)
    return time.perf_counter() - start, result


def timed(fn: Callable[[], Any], device: Optional[torch.device] = None) -> float:
    """Seconds of one call of `fn`."""
    return timed_call(fn, device)[0]


def best_alternating(candidates: dict[str, Callable[[], Any]], repeats: int,
                     device: Optional[torch.device] = None) -> tuple[dict[str, float], dict[str, Any]]:
    """Each candidate's best seconds over `repeats` rounds in which all run in turn, and the result
    of its last call."""
    best = dict.fromkeys(candidates, float("inf"))
    results: dict[str, Any] = {}
    for _ in range(repeats):
        for name, fn in candidates.items():
            seconds, results[name] = timed_call(fn, device)
            best[name] = min(best[name], seconds)
    return best, results


def median_of_alternating(a: Callable[[], None], b: Callable[[], None], device: torch.device,
                          repeats: int) -> tuple[float, float]:
    """Median seconds of a and of b, run alternately (a, b, a, b, ...) after one warm-up each."""
    timed(a, device), timed(b, device)
    times_a, times_b = [], []
    for _ in range(repeats):
        times_a.append(timed(a, device))
        times_b.append(timed(b, device))
    return statistics.median(times_a), statistics.median(times_b)
