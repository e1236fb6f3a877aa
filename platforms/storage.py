"""Atomic file writes: every artifact is written to a temporary name in the same directory and
renamed into place, so a killed process never leaves a half-written file under the final name."""

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch


def _atomic_write(path: Path, write) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def save_torch(obj: Any, path: Path) -> None:
    """torch.save to `path` atomically."""
    _atomic_write(path, lambda f: torch.save(obj, f))


def load_torch(path: Path, map_location: Any = "cpu") -> Any:
    """torch.load with weights_only=True: artifacts hold tensors and plain containers only."""
    return torch.load(path, map_location=map_location, weights_only=True)


def write_text(text: str, path: Path) -> None:
    _atomic_write(path, lambda f: f.write(text.encode()))


def write_json(obj: Any, path: Path) -> None:
    write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n", path)


def read_json(path: Path) -> Any:
    return json.loads(Path(path).read_text())
