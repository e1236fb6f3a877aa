"""Where a run ran: the software, the devices and the code, recorded once in its hparams.json.

Two results that differ for a reason outside their hparams (another torch, another GPU, uncommitted
code) should not look alike. None of this is hashed: the same command on another machine finds
the same run.
"""

from __future__ import annotations

import platform as python_platform
import socket
import subprocess
from pathlib import Path
from typing import Optional

import torch

from platforms.distributed import World

CODE = Path(__file__).resolve().parents[1]  # the checkout (or installed tree) this code runs from


def _git(*args: str) -> Optional[str]:
    """A git command's output in the code's checkout, or None outside one (or without git)."""
    try:
        result = subprocess.run(["git", "-C", str(CODE), *args], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip() if result.returncode == 0 else None


def code_version() -> dict[str, object]:
    """The git commit of the code and whether its tree had uncommitted changes (None: no checkout)."""
    commit = _git("rev-parse", "HEAD")
    if commit is None:
        return {"git_commit": None, "git_dirty": None}
    return {"git_commit": commit, "git_dirty": bool(_git("status", "--porcelain", "--untracked-files=no"))}


def describe(device: torch.device, world: World) -> dict[str, object]:
    """The environment of a run on `device` with `world` processes, as plain JSON values."""
    cuda = device.type == "cuda" and torch.cuda.is_available()
    return {
        "python": python_platform.python_version(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if cuda else None,
        "device": torch.cuda.get_device_name(device) if cuda else str(device),
        "processes": world.world_size,
        "threads": torch.get_num_threads(),
        "hostname": socket.gethostname(),
        **code_version(),
    }
