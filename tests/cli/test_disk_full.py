"""A disk that fills up mid-run: one line that says the disk is full and where, the last good
checkpoint and every finished file intact, and the advice (free space, rerun) works: the rerun
resumes and ends bitwise equal to a run that never ran out of space."""

from __future__ import annotations

import errno
import os
import subprocess
from pathlib import Path

import pytest
import torch

from tests.cli.test_train import one_line_error
from tests.conftest import TINY


def mount_tmpfs(path: Path, size: str) -> bool:
    if os.geteuid() != 0:
        return False
    path.mkdir(parents=True, exist_ok=True)
    return subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                          capture_output=True).returncode == 0


@pytest.fixture
def small_disk(tmp_path):
    disk = tmp_path / "disk"
    if not mount_tmpfs(disk, "256k"):
        pytest.skip("mounting a small tmpfs needs root (the fault-injection test covers the same path)")
    yield disk
    subprocess.run(["umount", str(disk)], capture_output=True)


# a checkpoint at every epoch end (4 steps): epoch checkpoints alone are spaced 100 steps apart
ARGV = [*TINY, "--checkpoint_every=4it"]


def final_weights(root: Path) -> dict:
    return torch.load(next(root.rglob("model_ep3_it0.pt")), weights_only=True)


def check_disk_full_then_resume(cli, root: Path, free_space, whole_root: Path) -> None:
    code, _, err = cli("train", *ARGV, root_dir=root)
    one_line_error(code, err, "disk is full", str(root))
    run = next(root.rglob("main"))
    assert not (run / "done.json").exists()
    saved = torch.load(run / "checkpoint.pt", weights_only=True)  # the last good checkpoint loads
    assert saved["iteration"] > 0 and all(torch.isfinite(v).all() for v in saved["model"].values())
    assert not list(run.glob(".*.tmp"))  # no half-written temporaries left behind
    free_space()
    assert cli("train", *ARGV, root_dir=root)[0] == 0
    a, b = final_weights(root), final_weights(whole_root)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_a_full_tmpfs_is_one_line_and_the_rerun_resumes(cli, small_disk, tmp_path):
    assert cli("train", *ARGV, root_dir=tmp_path / "whole")[0] == 0
    def grow():
        return subprocess.run(["mount", "-o", "remount,size=4m", str(small_disk)], check=True)
    check_disk_full_then_resume(cli, small_disk / "runs", grow, tmp_path / "whole")


class FillingDisk:
    """os.fdopen whose files raise ENOSPC once `budget` bytes have been written through them."""

    def __init__(self, budget: int):
        self.budget, self.written, self.real = budget, 0, os.fdopen

    def __call__(self, fd, *args, **kwargs):
        handle = self.real(fd, *args, **kwargs)
        disk, write = self, handle.write

        def limited(data):
            if disk.written + len(data) > disk.budget:
                raise OSError(errno.ENOSPC, "No space left on device")
            disk.written += len(data)
            return write(data)

        handle.write = limited
        return handle


def test_an_injected_full_disk_is_one_line_and_the_rerun_resumes(cli, tmp_path, monkeypatch):
    assert cli("train", *ARGV, root_dir=tmp_path / "whole")[0] == 0
    disk = FillingDisk(budget=300_000)  # room for the first files and checkpoints, not for the whole run
    monkeypatch.setattr(os, "fdopen", disk)
    check_disk_full_then_resume(cli, tmp_path / "runs", lambda: monkeypatch.setattr(os, "fdopen", disk.real),
                                tmp_path / "whole")
