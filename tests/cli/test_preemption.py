"""A real signal to a training subprocess checkpoints at the next step, mid-epoch, and the
rerun resumes to weights and metrics bitwise equal to a run never interrupted (CPU)."""

from __future__ import annotations

import re
import signal
import subprocess
from pathlib import Path

import pytest
import torch

import open_prune
from tests.processes import REPO, env, evaluations, one_thread, wait_for, worker  # noqa: F401
from tests.tiny_data import write_tiny_mnist

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def long_epoch_data(tmp_path_factory) -> Path:
    """4096 training examples: one epoch of 1024 steps at batch 4, long enough to be interrupted inside."""
    return write_tiny_mnist(tmp_path_factory.mktemp("long_epoch"), n_train=4096, n_test=64)


def flags(data: Path, root: Path) -> list[str]:
    return ["--dataset_name=mnist", "--batch_size=4", "--model_name=mnist_lenet_16_8", "--optimizer_name=sgd",
            "--lr=0.01", "--momentum=0.9", "--training_steps=1ep", "--eval_every=64it", "--quiet",
            "--device=cpu", f"--dataset_root={data}", f"--root={root}"]


def test_sigterm_checkpoints_mid_epoch_and_the_rerun_is_bitwise_equal(tmp_path, long_epoch_data):
    """(SIGUSR1, Slurm's warning, goes the same way: tests/cli/test_slurm.py sends it to a Slurm task.)"""
    signum = signal.SIGTERM
    root = tmp_path / "runs"
    process = subprocess.Popen(worker("train", *flags(long_epoch_data, root)), cwd=REPO, env=env(),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        pattern = "*/replicate_1/main/metrics.jsonl"
        metrics = wait_for(lambda: next((p for p in root.glob(pattern) if evaluations(p) >= 2), None),
                           "the evaluation at step 64", alive=lambda: process.poll() is None)
        process.send_signal(signum)
        _, err = process.communicate(timeout=120)
    finally:
        process.kill()
    assert process.returncode == 128 + signum
    name = signal.Signals(signum).name
    said = re.fullmatch(rf"open_prune: {name} received: checkpointed (\S+) at step 0ep(\d+)it; "
                        rf"rerun the same command to resume", err.strip())
    assert said, err
    run_dir = metrics.parent
    stopped = torch.load(run_dir / "checkpoint.pt", weights_only=True)["iteration"]
    assert said[1] == str(run_dir) and int(said[2]) == stopped and 64 < stopped < 1024  # mid-epoch, as it said

    assert open_prune.main(["train", *flags(long_epoch_data, root)]) == 0
    assert open_prune.main(["train", *flags(long_epoch_data, tmp_path / "uninterrupted")]) == 0
    reference = next((tmp_path / "uninterrupted").glob("*/replicate_1/main"))
    ours, theirs = (torch.load(d / "model_ep1_it0.pt", weights_only=True) for d in (run_dir, reference))
    assert all(torch.equal(ours[k], theirs[k]) for k in theirs)
    assert (run_dir / "metrics.jsonl").read_text() == (reference / "metrics.jsonl").read_text()
    assert not (run_dir / "checkpoint.pt").exists()
