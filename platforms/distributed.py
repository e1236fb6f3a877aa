"""Several processes as one run: data parallelism under torchrun.

torchrun starts one process per device and tells each where it stands through RANK, WORLD_SIZE
and LOCAL_RANK. `join(device)` reads them, initializes the process group (nccl on CUDA, gloo on
the CPU) and puts the process on its local device (cuda:LOCAL_RANK). The `World` it returns is
what the rest of the program asks:

    rank, world_size, is_primary      where this process stands (0, 1, True without torchrun)
    barrier()                         wait for every process
    broadcast(obj)                    rank 0's value, on every rank
    on_primary(fn)                    run fn on rank 0 only; every rank gets its result, or the
                                      same error (so a refusal on rank 0 stops every rank)
    sum(values) / sum_(tensor)        added over the ranks
    signal_vote()                     agree on stopping at the same step (see SignalVote)

Without torchrun (or with one process) the world is this process alone and all of it is free.
A process is in one torchrun job for its whole life, so the world is process-wide
(`current_world()`), like torch.distributed's default group.

Only rank 0 writes and prints. The other ranks' stdout goes to /dev/null and their `open_prune:`
message lines (errors, notices: rank 0 prints the same) are dropped from stderr; anything else
there, such as a traceback, is kept.
"""

from __future__ import annotations

import atexit
import os
import sys
from typing import Any, Callable, Optional, TypeVar

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from foundations.errors import UserError

T = TypeVar("T")
MESSAGE_PREFIX = "open_prune:"


class World:
    """The processes of one run and how they talk (see the module docstring)."""

    def __init__(self, rank: int = 0, world_size: int = 1, local_rank: int = 0,
                 device: Optional[torch.device] = None, cpu_group: Any = None):
        self.rank, self.world_size, self.local_rank = rank, world_size, local_rank
        self.device = device or torch.device("cpu")  # where this backend's collectives live
        self.cpu_group = cpu_group  # a gloo group for host-side votes (None: the default group is gloo)
        self._on_primary_now = False  # rank 0 is inside an on_primary call

    @property
    def is_distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_primary(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.is_distributed:
            dist.barrier()

    def broadcast(self, obj: T) -> T:
        """Rank 0's `obj` on every rank (pickled; rank 0 gets its own object back)."""
        if not self.is_distributed:
            return obj
        box = [obj if self.is_primary else None]
        dist.broadcast_object_list(box, src=0, device=self.device)
        return box[0]

    def on_primary(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """`fn(*args, **kwargs)` on rank 0, its result on every rank. A UserError on rank 0 is
        raised on every rank with the same message; any other failure too, as a RuntimeError.
        `fn` runs on rank 0 alone, so it must not wait for the other ranks (no barrier, no
        broadcast); an `on_primary` inside it simply runs there."""
        if not self.is_distributed or self._on_primary_now:
            return fn(*args, **kwargs)
        if self.is_primary:
            self._on_primary_now = True
            try:
                value = fn(*args, **kwargs)
            except UserError as error:
                self.broadcast(("error", str(error)))
                raise
            except BaseException as error:
                self.broadcast(("crash", f"{type(error).__name__}: {error}"))
                raise
            finally:
                self._on_primary_now = False
            return self.broadcast(("ok", value))[1]
        kind, payload = self.broadcast(None)
        if kind == "error":
            raise UserError(payload)
        if kind == "crash":
            raise RuntimeError(f"rank 0 failed: {payload}")
        return payload

    def sum_(self, tensor: torch.Tensor) -> torch.Tensor:
        """Add `tensor` over the ranks, in place (it must live on this world's device)."""
        if self.is_distributed:
            dist.all_reduce(tensor)
        return tensor

    def sum(self, values: dict[str, float]) -> dict[str, float]:
        """Each value added over the ranks (in float64, one collective)."""
        if not self.is_distributed or not values:
            return dict(values)
        totals = torch.tensor(list(values.values()), dtype=torch.float64, device=self.device)
        return dict(zip(values, self.sum_(totals).tolist()))

    def signal_vote(self) -> "SignalVote":
        return SignalVote(self.cpu_group)

    def broadcast_buffers(self, model: torch.nn.Module) -> None:
        """Rank 0's buffers (BatchNorm running statistics) on every rank. Without SyncBatchNorm
        each rank updates them from its own slice of the batch; DDP hands rank 0's to every
        forward, and this makes evaluations and saved weights agree too."""
        if self.is_distributed:
            for buffer in model.buffers():
                dist.broadcast(buffer, src=0)


class SignalVote:
    """Whether any rank caught a signal, agreed by all of them one step later.

    Ranks see a signal at different moments (or only one of them sees it), yet must checkpoint
    and stop at the same step, or they wait forever on each other's collectives. After each step
    every rank starts a non-blocking MAX all-reduce of the signal it caught (0 for none), on a
    gloo group so that it never waits for the GPU; before the next step it reads the result. The
    answer is the same on every rank and costs no host sync of the device."""

    def __init__(self, group: Any = None):
        self.group = group
        self.pending = None
        self.value = torch.zeros(1, dtype=torch.int64)

    def cast(self, signum: Optional[int]) -> None:
        self.value = torch.tensor([signum or 0], dtype=torch.int64)  # a fresh tensor: the last may be in flight
        self.pending = dist.all_reduce(self.value, op=dist.ReduceOp.MAX, group=self.group, async_op=True)

    def result(self) -> Optional[int]:
        """The largest signal number any rank cast last, or None."""
        if self.pending is None:
            return None
        self.pending.wait()
        self.pending = None
        return int(self.value.item()) or None


_WORLD = World()


def current_world() -> World:
    """The world this process belongs to (a single process until `join` found torchrun)."""
    return _WORLD


def _environment_int(name: str) -> int:
    text = os.environ.get(name, "")
    if not text.isdigit():
        raise UserError(f"${name}={text!r} but WORLD_SIZE={os.environ.get('WORLD_SIZE')}: start several processes "
                        f"with torchrun, which sets RANK, WORLD_SIZE and LOCAL_RANK")
    return int(text)


def join(device: torch.device) -> tuple[World, torch.device]:
    """Join the torchrun job this process was started in, if any: (the world, this rank's device)."""
    global _WORLD
    if os.environ.get("WORLD_SIZE", "1") in ("", "1"):
        return _WORLD, device
    size, rank, local = (_environment_int(name) for name in ("WORLD_SIZE", "RANK", "LOCAL_RANK"))
    if device.type == "cuda":
        count = torch.cuda.device_count()
        if device.index is not None and device.index != local:
            raise UserError(f"--device={device} under torchrun: each process uses cuda:LOCAL_RANK; pass --device=cuda")
        if local >= count:
            raise UserError(f"LOCAL_RANK={local} but this machine has {count} GPU(s): give torchrun "
                            f"--nproc_per_node={count} or fewer")
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
    elif device.type != "cpu":
        raise UserError(f"--device={device} under torchrun: use cuda (nccl) or cpu (gloo)")
    if _WORLD.is_distributed:  # already joined (a second command in the same process)
        return _WORLD, device
    backend = "nccl" if device.type == "cuda" else "gloo"
    if not {"MASTER_ADDR", "MASTER_PORT"} <= set(os.environ):
        raise UserError("WORLD_SIZE is set but MASTER_ADDR/MASTER_PORT are not: start the processes with torchrun")
    dist.init_process_group(backend, rank=rank, world_size=size, device_id=device if backend == "nccl" else None)
    atexit.register(_leave)
    cpu_group = dist.new_group(backend="gloo") if backend == "nccl" else None
    _WORLD = World(rank, size, local, device, cpu_group)
    if rank != 0:
        _quiet_this_rank()
    return _WORLD, device


def _leave() -> None:
    """Tear the process group down before the interpreter does: left to the interpreter's
    shutdown, gloo's threads can outlive their group and abort the process."""
    if dist.is_initialized():
        dist.destroy_process_group()


def data_parallel(model: torch.nn.Module, world: World, sync_batchnorm: bool = False) -> torch.nn.Module:
    """What the training step calls: `model` itself in one process; under torchrun a
    DistributedDataParallel wrapper (gradients averaged over the ranks during backward), its
    BatchNorm layers made SyncBatchNorm first when asked (in place: the parameters and buffers
    stay the same tensors, the state_dict keys the same)."""
    if not world.is_distributed:
        return model
    if sync_batchnorm:
        use_sync_batchnorm(model)
    device = next(model.parameters()).device
    return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)


def use_sync_batchnorm(model: torch.nn.Module) -> None:
    """Make every BatchNorm layer under `model` a SyncBatchNorm (statistics over all ranks'
    slices of the batch, as one process computes them), in place: the root object, its
    parameters and buffers stay the same tensors, so optimizers, masks and hooks keep them."""
    for name, child in model.named_children():
        setattr(model, name, torch.nn.SyncBatchNorm.convert_sync_batchnorm(child))


class _WithoutMessages:
    """A text stream that passes everything but whole lines starting with `open_prune:`."""

    def __init__(self, stream: Any):
        self.stream = stream
        self.partial = ""

    def write(self, text: str) -> int:
        *lines, self.partial = (self.partial + text).split("\n")
        kept = "".join(line + "\n" for line in lines if not line.startswith(MESSAGE_PREFIX))
        if kept:
            self.stream.write(kept)
        return len(text)

    def __getattr__(self, name: str) -> Any:  # flush, fileno, isatty, encoding, ...
        return getattr(self.stream, name)


def _quiet_this_rank() -> None:
    sys.stdout = open(os.devnull, "w")
    sys.stderr = _WithoutMessages(sys.stderr)
