"""Where files live and where work runs.

A run is one process on one device, or, under torchrun, one process per device working as one
(platforms/distributed.py): `rank`, `world_size`, `barrier()`, `broadcast()` and `on_primary()`
come from that world, and only the primary process (rank 0) writes.
"""

from __future__ import annotations

import argparse
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, TypeVar

import torch

from foundations.errors import UserError
from foundations.step import check_nonzero_step
from platforms import sinks, threads
from platforms.distributed import World, current_world, join

T = TypeVar("T")


ROOT_VARIABLE = "OPEN_PRUNE_ROOT"


def _default_root() -> str:
    return os.environ.get(ROOT_VARIABLE) or str(Path.home() / "open_prune_data")


def root_of(given: Optional[str]) -> tuple[Path, bool]:
    """(the root, whether it came from $OPEN_PRUNE_ROOT) of a `--root` flag left unset (None) or given."""
    if given is not None:
        return Path(given).expanduser(), False
    from_env = bool(os.environ.get(ROOT_VARIABLE))
    return Path(_default_root()).expanduser(), from_env


def _default_dataset_root() -> str:
    return os.environ.get("OPEN_PRUNE_DATASETS", str(Path.home() / "open_prune_datasets"))


def _default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


STACK_AUTO = "auto"


def check_stack(text: Optional[str]) -> Optional[str]:
    """--stack's value as given (None: not given), or a one-line refusal."""
    if text is not None and text != STACK_AUTO and not (text.isdigit() and int(text) >= 1):
        raise UserError(f"--stack={text} must be a positive number of runs per stack, or auto")
    return text


@dataclass
class Platform:
    root: Path
    dataset_root: Path
    device: torch.device
    num_workers: int = 0
    download: bool = False
    quiet: bool = False
    checkpoint_every: Optional[str] = None  # a step string: extra mid-epoch checkpoints
    catch_signals: bool = True  # SIGTERM/SIGUSR1/SIGINT checkpoint at the next step and exit
    sync_batchnorm: bool = False  # under torchrun: BatchNorm statistics over the global batch
    root_from_env: bool = False  # the root came from $OPEN_PRUNE_ROOT, not --root (for the errors)
    num_threads: Optional[int] = None  # torch's CPU threads, as set by from_args (None: left as they were)
    log_to: tuple[str, ...] = ()  # tracking sinks a finished training run is logged to (platforms/sinks)
    stack: Optional[str] = None  # --stack: "auto" or a count (None: this command's trainings one after another)
    world: World = field(default_factory=current_world)

    def prepare_root(self) -> None:
        """Create the root (only when a run is about to be written), or say in one line why not."""
        self.on_primary(self._prepare_root)

    @property
    def root_source(self) -> str:
        """How the user named the root: `--root` or `$OPEN_PRUNE_ROOT` (where it came from)."""
        return f"${ROOT_VARIABLE}" if self.root_from_env else "--root"

    def _root_hint(self) -> str:
        return f" (set ${ROOT_VARIABLE} to one, or pass --root=DIR)" if self.root_from_env else ""

    def _prepare_root(self) -> None:
        if self.root.exists() and not self.root.is_dir():
            raise UserError(f"{self.root_source}={self.root} is a file, not a directory: give a directory for the "
                            f"runs{self._root_hint()}")
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            # named per process and thread, so that runs preparing the same root at once never share it
            probe = self.root / f".open_prune_write_test_{os.getpid()}_{threading.get_ident()}"
            probe.touch()
            probe.unlink()
        except OSError as error:
            raise UserError(f"{self.root_source}={self.root} cannot be written ({error.strerror or error}): "
                            f"give a directory you may write to{self._root_hint()}") from None

    # ---- the processes of this run (one, or torchrun's) ------------------------------------
    @property
    def rank(self) -> int:
        return self.world.rank

    @property
    def world_size(self) -> int:
        return self.world.world_size

    @property
    def is_primary(self) -> bool:
        return self.world.is_primary

    def barrier(self) -> None:
        """Wait for every process (nothing to wait for in a single process)."""
        self.world.barrier()

    def broadcast(self, obj: T) -> T:
        """The primary's `obj` on every process."""
        return self.world.broadcast(obj)

    def on_primary(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run `fn` on the primary only (a write, a repair, a decision); every process gets its
        result, or raises its UserError."""
        return self.world.on_primary(fn, *args, **kwargs)

    # ---- command line ---------------------------------------------------------------------
    @staticmethod
    def add_args(parser: argparse.ArgumentParser) -> None:
        group = parser.add_argument_group("Platform", "Where files live and where work runs (not hashed).")
        group.add_argument("--root", default=None, metavar="DIR",
                           help="where runs are written (default: $OPEN_PRUNE_ROOT or ~/open_prune_data)")
        group.add_argument("--dataset_root", default=_default_dataset_root(), metavar="DIR",
                           help="where datasets are read (default: $OPEN_PRUNE_DATASETS or ~/open_prune_datasets)")
        group.add_argument("--device", default=_default_device(), metavar="DEVICE",
                           help=f"torch device (default: {_default_device()})")
        group.add_argument("--num_workers", type=int, default=0, metavar="N",
                           help="DataLoader workers for on-disk datasets (default: 0)")
        group.add_argument("--download", action="store_true",
                           help="download a missing dataset (never done otherwise)")
        group.add_argument("--checkpoint_every", metavar="STEP",
                           help="also checkpoint every this many steps, e.g. 2000it, for long epochs "
                                "(default: at every epoch end only)")
        group.add_argument("--sync_batchnorm", action="store_true",
                           help="under torchrun, BatchNorm normalizes over the whole global batch (SyncBatchNorm, "
                                "CUDA only), so results do not depend on the number of processes; off: each "
                                "process normalizes over its own slice (not hashed)")
        group.add_argument("--num_threads", default=threads.AUTO, metavar="N",
                           help="threads of torch's CPU kernels (default: auto: the cores this process may use by "
                                "its affinity, cgroup quota, Slurm's SLURM_CPUS_PER_TASK and torchrun's processes, "
                                "halved outside a Slurm job; OMP_NUM_THREADS when set)")
        group.add_argument("--stack", nargs="?", const=STACK_AUTO, default=None, metavar="N|auto",
                           help="train the command's trainings that do not depend on one another (chaos-causality's "
                                "retrainings, a control's levels) as one stacked model in this process, N per "
                                "stack or as many as the free memory holds (docs/stacking.md; not hashed)")
        group.add_argument("--log_to", default=None, metavar="SINKS",
                           help="also log each finished training run to these sinks, comma-separated: "
                                "tensorboard (event files under <run>/tensorboard), wandb (offline unless "
                                "$WANDB_MODE says otherwise) (default: none)")

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> "Platform":
        try:
            device = torch.device(args.device)
        except RuntimeError:
            raise UserError(f"--device={args.device} is not a torch device: use cpu, cuda or cuda:N")
        if device.type == "cuda" and not torch.cuda.is_available():
            raise UserError(f"--device={args.device} but CUDA is not available here: use --device=cpu")
        dataset_root = Path(args.dataset_root).expanduser()
        if dataset_root.exists() and not dataset_root.is_dir():
            raise UserError(f"--dataset_root={dataset_root} is a file, not a directory: give the directory "
                            f"that holds the datasets")
        if args.num_workers < 0:
            raise UserError(f"--num_workers={args.num_workers} must be zero or more")
        checkpoint_every = getattr(args, "checkpoint_every", None)
        if checkpoint_every is not None:
            check_nonzero_step(checkpoint_every, "checkpoint_every")
        chosen_threads = threads.choose(getattr(args, "num_threads", threads.AUTO))
        log_to = sinks.parse(getattr(args, "log_to", None))
        stack = check_stack(getattr(args, "stack", None))
        world, device = join(device)
        sync_batchnorm = getattr(args, "sync_batchnorm", False)
        if sync_batchnorm and world.is_distributed and device.type != "cuda":
            raise UserError("--sync_batchnorm needs CUDA (torch's SyncBatchNorm runs on GPUs only): drop it on the CPU")
        root, root_from_env = root_of(args.root)
        return cls(root=root, dataset_root=dataset_root,
                   device=device, num_workers=args.num_workers, download=args.download,
                   quiet=getattr(args, "quiet", False), checkpoint_every=checkpoint_every,
                   sync_batchnorm=sync_batchnorm, world=world, root_from_env=root_from_env,
                   num_threads=threads.apply(chosen_threads), log_to=log_to, stack=stack)

    @classmethod
    def for_locating(cls, args: argparse.Namespace) -> "Platform":
        """Where a command's runs live, without touching a device or joining processes (a
        submitting host may have no GPU for a command that will run on one)."""
        try:
            device = torch.device(args.device)
        except RuntimeError:
            raise UserError(f"--device={args.device} is not a torch device: use cpu, cuda or cuda:N")
        threads.parse(getattr(args, "num_threads", threads.AUTO))  # refused here too, before a submission
        sinks.parse(getattr(args, "log_to", None))
        check_stack(getattr(args, "stack", None))
        root, root_from_env = root_of(args.root)
        return cls(root=root, dataset_root=Path(args.dataset_root).expanduser(),
                   device=device, world=World(), root_from_env=root_from_env)
