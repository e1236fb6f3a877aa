"""Atomic file writes: every artifact is written to a temporary name in the same directory and
renamed into place, so a killed process never leaves a half-written file under the final name.

The one exception is `metrics.jsonl`, which is appended to line by line (training/metrics.py);
its reader drops a half-written last line.

Files get the permissions of an ordinary file under the process umask (not mkstemp's private
0600), so a group can share a results directory. A full disk or any other failed write is one
UserError naming the file; the temporary file is removed and the previous version stays intact.
"""

from __future__ import annotations

import errno
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any, Callable

import torch

from foundations.errors import UserError

TMP_SUFFIX = ".tmp"


def current_umask() -> int:
    """The process umask, read without changing it where Linux tells it (/proc/self/status)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def file_mode() -> int:
    """What an ordinary new file gets: rw for everyone the umask allows."""
    return 0o666 & ~current_umask()


class WriteFailed(UserError):
    """A file could not be written (disk full, read-only filesystem, no permission)."""


def describe_write_error(error: OSError, path: Path) -> str:
    """One line saying why `path` could not be written and what to do."""
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        return (f"the disk is full: could not write {path}; free space under {Path(path).parent} (or point --root "
                f"elsewhere) and rerun the same command to resume from the last checkpoint")
    if error.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"cannot write {path} ({error.strerror}); choose a --root you may write to"
    return f"could not write {path} ({error.strerror or error}); check the filesystem and rerun"


def _atomic_write(path: Path, write: Callable[[Any], None]) -> None:
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TMP_SUFFIX, dir=path.parent)
    except OSError as error:
        raise WriteFailed(describe_write_error(error, path)) from None
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), file_mode())
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as error:
        if os.path.exists(tmp):
            os.unlink(tmp)
        cause = error if isinstance(error, OSError) else getattr(error, "__cause__", None) or error.__context__
        if isinstance(cause, OSError):  # torch.save wraps OSErrors in RuntimeErrors
            raise WriteFailed(describe_write_error(cause, path)) from None
        if isinstance(error, RuntimeError) and "write" in str(error).lower():
            raise WriteFailed(describe_write_error(OSError(errno.EIO, str(error)[:120]), path)) from None
        raise


def remove_leftover_temporaries(directory: Path) -> list[Path]:
    """Delete the temporary files a killed writer left in `directory`; returns what was removed."""
    removed = []
    directory = Path(directory)
    if not directory.is_dir():
        return removed
    for leftover in directory.glob(f".*{TMP_SUFFIX}"):
        try:
            leftover.unlink()
            removed.append(leftover)
        except OSError:
            pass
    return removed


def save_torch(obj: Any, path: Path) -> None:
    """torch.save to `path` atomically."""
    _atomic_write(path, lambda f: torch.save(obj, f))


def load_torch(path: Path, map_location: Any = "cpu") -> Any:
    """torch.load with weights_only=True: artifacts hold tensors and plain containers only."""
    return torch.load(path, map_location=map_location, weights_only=True)


def write_text(text: str, path: Path) -> None:
    _atomic_write(path, lambda f: f.write(text.encode()))


def json_safe(obj: Any) -> Any:
    """`obj` with every NaN or infinite float replaced by None (JSON has no such numbers: an
    undefined metric is written as null)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {key: json_safe(value) for key, value in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(value) for value in obj]
    return obj


def write_json(obj: Any, path: Path) -> None:
    write_text(json.dumps(json_safe(obj), indent=2, sort_keys=True, allow_nan=False) + "\n", path)


def read_json(path: Path) -> Any:
    return json.loads(Path(path).read_text())
