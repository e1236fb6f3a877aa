"""How many threads torch's CPU kernels use (`--num_threads`, default auto).

Why not torch's default. torch runs its CPU kernels on OpenMP threads, one per physical core of the
machine, and OpenMP threads wait for each other at the end of every parallel kernel by spinning
(libgomp spins for a while before it sleeps). Alone that is fastest. When the cores are shared (a
second training process, a test suite, a container or a Slurm task holding fewer cores than the
machine has) a thread that lost its core makes the others spin through whole scheduler slices, at
every kernel. On 2 cores, an epoch of LeNet-300-100 (benchmarks/threads.py) beside a second training
process took 4.7-20.7 s (median of 6; single epochs 2.0-33 s) with torch's default of 2 threads in
each, and 1.0 s with one thread in each, as fast as alone; with OMP_WAIT_POLICY=PASSIVE (no
spinning) 2 threads took 1.1-2.1 s beside a test suite. The spinning can only be turned off before torch loads
(OMP_WAIT_POLICY=PASSIVE in the environment); the thread count can be chosen here.

`auto` is:
  - OMP_NUM_THREADS when it is set (a choice made by whoever started us; torchrun sets 1 when it
    starts several processes);
  - else the cores this process may use, the least of: its CPU affinity (os.sched_getaffinity:
    taskset, numactl, Slurm's cgroup), the cgroup's CPU quota (containers: docker --cpus), and
    Slurm's SLURM_CPUS_PER_TASK; shared by torchrun's LOCAL_WORLD_SIZE processes on this machine;
  - in a Slurm job those cores are the task's alone, so all of them; elsewhere the machine is
    shared with whatever else runs there, so half of them (at least one): two processes of
    ours then fit the cores exactly, and alone a run loses less than the spinning costs when
    shared (2 cores: one thread, 1.33-1.38x slower alone on LeNet-300-100, 4.7-21x faster beside
    a second training process).

`--num_threads=N` sets it outright. The thread count changes no hash: it is a platform flag.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Optional

from foundations.errors import UserError

AUTO = "auto"
CGROUP = Path("/sys/fs/cgroup")


@dataclass(frozen=True)
class Choice:
    threads: int
    why: str  # one line, for people: how `threads` was chosen


def parse(text: str) -> Optional[int]:
    """`--num_threads`: None for auto, else a positive whole number (or a one-line UserError)."""
    text = str(text).strip()
    if text == AUTO:
        return None
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise UserError(f"--num_threads={text} is neither a positive whole number nor auto: give e.g. "
                        f"--num_threads=1, or leave it out (auto: the cores this process may use)")
    return value


def _read(path: Path) -> Optional[str]:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def cgroup_cpus(cgroup_root: Path = CGROUP, self_cgroup: Optional[str] = None) -> Optional[float]:
    """The CPU quota of this process's cgroup and its ancestors, in cores (None: no quota).
    cgroup v2 (`cpu.max`: "<quota> <period>" or "max <period>") and v1 (`cpu.cfs_quota_us`, -1: none)."""
    if self_cgroup is None:
        self_cgroup = _read(Path("/proc/self/cgroup")) or ""
    quotas = []
    for line in self_cgroup.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        hierarchy, controllers, path = parts
        if hierarchy == "0" and controllers == "":  # v2: one tree
            bases = [cgroup_root]
        elif "cpu" in controllers.split(","):  # v1: the cpu controller's tree
            bases = [cgroup_root / controllers, cgroup_root / "cpu", cgroup_root / "cpu,cpuacct"]
        else:
            continue
        relative = Path(path.lstrip("/"))
        for base in bases:
            for directory in [base / relative, *(base / p for p in relative.parents)]:
                quotas.append(_quota_of(directory))
    quotas.append(_quota_of(cgroup_root))  # a container sees its own cgroup as the root
    found = [q for q in quotas if q is not None]
    return min(found) if found else None


def _quota_of(directory: Path) -> Optional[float]:
    v2 = _read(directory / "cpu.max")
    if v2:
        quota, _, period = v2.partition(" ")
        if quota != "max" and period:
            try:
                return int(quota) / int(period)
            except ValueError:
                return None
        return None
    quota, period = _read(directory / "cpu.cfs_quota_us"), _read(directory / "cpu.cfs_period_us")
    if quota and period:
        try:
            if int(quota) > 0 and int(period) > 0:
                return int(quota) / int(period)
        except ValueError:
            return None
    return None


def affinity_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        return os.cpu_count() or 1


def _positive_int(text: Optional[str]) -> Optional[int]:
    try:
        value = int(str(text).strip())
    except (TypeError, ValueError):
        return None
    return value if value > 0 else None


def auto(environ: Optional[Mapping[str, str]] = None, affinity: Optional[int] = None,
         quota: Optional[float] = -1.0) -> Choice:
    """The default thread count (see the module docstring); the arguments are for tests (quota=-1:
    read the cgroup)."""
    environ = os.environ if environ is None else environ
    omp = _positive_int(environ.get("OMP_NUM_THREADS"))
    if omp is not None:
        return Choice(omp, f"OMP_NUM_THREADS={omp}")
    affinity = affinity_cpus() if affinity is None else affinity
    quota = cgroup_cpus() if quota == -1.0 else quota
    limits = [(affinity, f"{affinity} cores in this process's CPU affinity")]
    if quota is not None:
        limits.append((max(1, math.ceil(quota)), f"a cgroup CPU quota of {quota:g} cores"))
    slurm_cpus = _positive_int(environ.get("SLURM_CPUS_PER_TASK"))
    if slurm_cpus is not None:
        limits.append((slurm_cpus, f"SLURM_CPUS_PER_TASK={slurm_cpus}"))
    cores, why = min(limits, key=lambda limit: limit[0])
    local = _positive_int(environ.get("LOCAL_WORLD_SIZE")) or 1
    if local > 1:
        why += f", shared by torchrun's {local} processes on this machine"
    per_process = max(1, cores // local)
    if "SLURM_JOB_ID" in environ:
        return Choice(per_process, f"{why}, a Slurm allocation: all of them")
    return Choice(max(1, per_process // 2), f"{why}, on a machine shared with whatever else runs: half of them")


def choose(text: str, environ: Optional[Mapping[str, str]] = None) -> Choice:
    """`--num_threads` (a number or auto) as the thread count to use."""
    value = parse(text)
    return Choice(value, f"--num_threads={value}") if value is not None else auto(environ)


def apply(choice: Choice) -> int:
    """Set torch's intra-op thread count; returns it. OpenMP keeps the count per thread: it holds
    in the calling thread (the main one, for a command), and a trainer that trains in another
    thread sets it there too (runs/stack_plan.py)."""
    import torch

    if torch.get_num_threads() != choice.threads:
        torch.set_num_threads(choice.threads)
    return choice.threads
