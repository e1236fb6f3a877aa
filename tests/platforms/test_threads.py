"""`--num_threads` (platforms/threads.py): auto from the cores this process may use, set on torch for
a run, never part of a hash, and bad values refused in one line."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from foundations.errors import UserError
from platforms import threads
from tests.cli.test_train import one_line_error
from tests.conftest import TINY


@pytest.fixture
def restore_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize("environ, affinity, quota, expected", [
    ({}, 2, None, 1),                                      # a shared 2-core machine: half
    ({}, 16, None, 8),
    ({}, 1, None, 1),
    ({}, 64, 4.0, 2),                                      # a container's quota, not the host's cores
    ({}, 64, 2.5, 1),                                      # a quota of 2.5 cores is 3, halved
    ({"SLURM_JOB_ID": "3", "SLURM_CPUS_PER_TASK": "4"}, 64, None, 4),  # a Slurm task's cores are its own
    ({"SLURM_JOB_ID": "3"}, 6, None, 6),                  # Slurm's cgroup narrows the affinity
    ({"SLURM_JOB_ID": "3", "SLURM_CPUS_PER_TASK": "8", "LOCAL_WORLD_SIZE": "4"}, 64, None, 2),
    ({"LOCAL_WORLD_SIZE": "2"}, 16, None, 4),              # torchrun's processes share the cores
    ({"LOCAL_WORLD_SIZE": "4"}, 2, None, 1),
    ({"OMP_NUM_THREADS": "3", "SLURM_JOB_ID": "1"}, 64, None, 3),  # an explicit choice wins
    ({"OMP_NUM_THREADS": "junk"}, 8, None, 4),
])
def test_auto_is_the_cores_this_process_may_use(environ, affinity, quota, expected):
    choice = threads.auto(environ, affinity=affinity, quota=quota)
    assert choice.threads == expected and choice.why


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_the_cgroup_quota_is_read_for_v2_and_v1_and_the_least_of_the_ancestors_wins(tmp_path):
    v2 = tmp_path / "v2"
    write(v2 / "cpu.max", "max 100000\n")
    write(v2 / "job" / "cpu.max", "300000 100000\n")
    write(v2 / "job" / "step" / "cpu.max", "max 100000\n")
    assert threads.cgroup_cpus(v2, "0::/job/step\n") == 3.0
    v1 = tmp_path / "v1"
    write(v1 / "cpu,cpuacct" / "docker" / "x" / "cpu.cfs_quota_us", "150000\n")
    write(v1 / "cpu,cpuacct" / "docker" / "x" / "cpu.cfs_period_us", "100000\n")
    assert threads.cgroup_cpus(v1, "4:memory:/docker/x\n3:cpu,cpuacct:/docker/x\n") == 1.5
    none = tmp_path / "none"
    write(none / "cpu" / "cpu.cfs_quota_us", "-1\n")
    write(none / "cpu" / "cpu.cfs_period_us", "100000\n")
    assert threads.cgroup_cpus(none, "1:cpu:/\n0::/\n") is None
    assert threads.cgroup_cpus(tmp_path / "absent", "0::/\n") is None


@pytest.mark.parametrize("text", ["0", "-2", "two", "1.5", ""])
def test_a_bad_thread_count_is_refused(text):
    with pytest.raises(UserError, match="--num_threads"):
        threads.parse(text)


def test_a_run_uses_the_threads_asked_for_and_its_directory_does_not_change(cli, restore_threads):
    located = cli("train", *TINY, "--display_output_location")[1]
    torch.set_num_threads(2)
    code, _, _ = cli("train", *TINY, "--num_threads=1")
    assert code == 0 and torch.get_num_threads() == 1
    assert cli("train", *TINY, "--num_threads=3", "--display_output_location")[1] == located
    code, out, _ = cli("train", *TINY, "--num_threads=2")  # the same run: finished, nothing retrained
    assert code == 0 and "already finished" in out and torch.get_num_threads() == 2
    (trunk,) = cli.root.glob("train_*/replicate_1/main")
    assert "num_threads" not in (trunk / "hparams.json").read_text()


def test_auto_sets_its_choice_on_torch(cli, restore_threads, monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    monkeypatch.delenv("SLURM_CPUS_PER_TASK", raising=False)
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    assert cli("train", *TINY)[0] == 0
    assert torch.get_num_threads() == threads.auto().threads
    if threads.cgroup_cpus() is None:  # here: half the cores of our affinity
        assert torch.get_num_threads() == max(1, len(os.sched_getaffinity(0)) // 2)


def test_a_bad_num_threads_is_one_line_before_anything_is_written(cli):
    one_line_error(*cli("train", *TINY, "--num_threads=many")[::2], "--num_threads=many")
    one_line_error(*cli("submit", "--dry_run", "--", "train", *TINY, "--num_threads=0")[::2], "--num_threads=0")
    assert not cli.root.exists()
