"""`submit` on a real Slurm: a one-node cluster (Debian's slurm-wlm, tests/slurm_cluster.py)
started for this module. A grid goes as one job array and completes; a second submit of it sends
nothing; a task told to stop (`scancel --signal=USR1`, what Slurm sends before a time limit)
checkpoints mid-epoch, requeues itself through submitit and ends bitwise equal to a run never
interrupted; the plain sbatch script runs its grid too."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
import torch

import open_prune
from tests.conftest import TINY
from tests.processes import evaluations, one_thread, wait_for  # noqa: F401
from tests.slurm_cluster import Unavailable, start_cluster, unavailable_reason
from tests.tiny_data import write_tiny_mnist

pytestmark = pytest.mark.usefixtures("one_thread")
TASKS = ["--slurm_time=10", "--slurm_cpus_per_task=1", "--slurm_setup=export OMP_NUM_THREADS=1"]
LOUD = [flag for flag in TINY if flag != "--quiet"]  # batch jobs print a line per evaluation


@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
    reason = unavailable_reason()
    if reason:
        pytest.skip(reason)
    try:
        cluster = start_cluster(tmp_path_factory.mktemp("slurm"))
    except Unavailable as error:
        pytest.skip(str(error))
    previous = os.environ.get("SLURM_CONF")
    os.environ["SLURM_CONF"] = str(cluster.conf)  # for submitit's sbatch, and inherited by the tasks
    yield cluster
    cluster.stop()
    if previous is None:
        os.environ.pop("SLURM_CONF", None)
    else:
        os.environ["SLURM_CONF"] = previous


def submit(capsys, *argv: str) -> str:
    code = open_prune.main(["submit", *argv])
    out, err = capsys.readouterr()
    assert code == 0, err
    return out


def queued(cluster, job: str) -> bool:
    return bool(cluster.command("squeue", "--noheader", f"--jobs={job}", check=False).stdout.strip())


def job_ids(cluster) -> list[str]:
    return re.findall(r"JobId=(\d+)", cluster.command("scontrol", "show", "jobs", "--oneliner").stdout)


def weights(run_dir: Path, name: str) -> dict:
    return torch.load(run_dir / name, weights_only=True)


def test_a_grid_runs_as_one_job_array_and_a_second_submit_sends_nothing(slurm, tmp_path, dataset_root, capsys):
    command = ["train", *LOUD, f"--root={tmp_path / 'runs'}", f"--dataset_root={dataset_root}", "--device=cpu"]
    out = submit(capsys, *TASKS, "--", *command, "--replicate=1-3")
    job = re.search(r"submitted 3 run\(s\) as Slurm job array (\d+) \(0 already done", out)[1]
    first_log = Path(re.search(r"tail -f (\S+)", out)[1])
    wait_for(lambda: not queued(slurm, job), "the job array's end", timeout=300, poll=0.5)

    trunks = sorted((tmp_path / "runs").glob("train_*/replicate_*/main"))
    assert [trunk.parent.name for trunk in trunks] == ["replicate_1", "replicate_2", "replicate_3"]
    assert all((trunk / "done.json").exists() for trunk in trunks)
    here = tmp_path / "here"
    assert open_prune.main([*command, f"--root={here}", "--quiet"]) == 0  # task 0 ran replicate 1
    ours, theirs = weights(trunks[0], "model_ep3_it0.pt"), weights(next(here.glob("*/*/main")), "model_ep3_it0.pt")
    assert all(torch.equal(ours[k], theirs[k]) for k in ours)
    assert re.search(r"main step 3ep0it .*test_accuracy=1\.0000 .*it/s", first_log.read_text())  # tail -f works

    known = job_ids(slurm)
    capsys.readouterr()
    assert "all 3 runs are already done: nothing submitted" in submit(capsys, *TASKS, "--", *command, "--replicate=1-3")
    assert job_ids(slurm) == known


def test_a_task_told_to_stop_requeues_itself_and_ends_bitwise_equal(slurm, tmp_path, capsys):
    data = write_tiny_mnist(tmp_path / "data", n_train=4096, n_test=64)
    command = ["train", "--dataset_name=mnist", "--batch_size=4", "--model_name=mnist_lenet_16_8",
               "--optimizer_name=sgd", "--lr=0.01", "--momentum=0.9", "--training_steps=1ep", "--eval_every=64it",
               "--quiet", "--device=cpu", f"--dataset_root={data}"]
    root = tmp_path / "runs"
    out = submit(capsys, *TASKS, "--", *command, f"--root={root}")
    job = re.search(r"as Slurm job (\d+) ", out)[1]
    stdout_log = Path(re.search(r"tail -f (\S+)", out)[1])
    metrics = wait_for(lambda: next((p for p in root.glob("*/*/main/metrics.jsonl") if evaluations(p) >= 2), None),
                       "the evaluation at step 64", timeout=300, alive=lambda: queued(slurm, job))
    slurm.command("scancel", "--signal=USR1", job)
    wait_for(lambda: "PENDING" in slurm.command("squeue", "-h", "-o", "%T", f"--jobs={job}").stdout,
             "the requeue", timeout=120)
    wait_for(lambda: (metrics.parent / "done.json").exists() and not queued(slurm, job), "the rerun's end",
             timeout=300, poll=0.5)

    stderr_log = stdout_log.with_name(stdout_log.name.replace("_log.out", "_log.err"))
    said = re.search(r"open_prune: SIGUSR1 received: checkpointed \S+ at step 0ep(\d+)it", stderr_log.read_text())
    assert said and 64 < int(said[1]) < 1024  # mid-epoch
    assert "Requeued job" in stdout_log.read_text()  # submitit's checkpoint protocol did it
    assert "Restarts=1" in slurm.command("scontrol", "show", "job", job).stdout

    assert open_prune.main([*command, f"--root={tmp_path / 'uninterrupted'}"]) == 0
    reference = next((tmp_path / "uninterrupted").glob("*/*/main"))
    ours, theirs = weights(metrics.parent, "model_ep1_it0.pt"), weights(reference, "model_ep1_it0.pt")
    assert all(torch.equal(ours[k], theirs[k]) for k in ours)
    assert metrics.read_text() == (reference / "metrics.jsonl").read_text()


def test_the_plain_sbatch_script_runs_its_grid(slurm, tmp_path, dataset_root, capsys):
    script = tmp_path / "jobs.sh"
    command = ["train", *TINY, f"--root={tmp_path / 'runs'}", f"--dataset_root={dataset_root}", "--device=cpu"]
    out = submit(capsys, f"--write_sbatch={script}", *TASKS, "--", *command, "--replicate=1,2")
    assert f"sbatch {script}" in out
    finished = slurm.command("sbatch", "--wait", str(script), timeout=300)
    assert finished.returncode == 0, finished.stderr
    trunks = sorted((tmp_path / "runs").glob("train_*/replicate_*/main"))
    assert [t.parent.name for t in trunks] == ["replicate_1", "replicate_2"]
    assert all((t / "done.json").exists() for t in trunks)
