"""`submit --write_sbatch`: a script that works wherever it is submitted from. Absolute log, working
and run-root paths (from a relative --root, and from $OPEN_PRUNE_ROOT), the time limit the help
promises, and a task of the script run for real from another directory."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
from pathlib import Path

import open_prune
from platforms.slurm import DEFAULT_TIME_MINUTES
from tests.conftest import TINY


def write_script(capsys, *argv: str) -> tuple[int, str]:
    code = open_prune.main(["submit", *argv])
    return code, capsys.readouterr().out


def sbatch_lines(text: str) -> dict[str, str]:
    return dict(re.findall(r"^#SBATCH --([\w-]+)(?:=(.*))?$", text, flags=re.M))


def task_commands(text: str) -> list[list[str]]:
    return [shlex.split(line.split(")", 1)[1].rsplit(";;", 1)[0])[1:]
            for line in text.splitlines() if re.match(r"^  \d+\) srun ", line)]


def flag(command: list[str], name: str) -> list[str]:
    return [arg.split("=", 1)[1] for arg in command if arg.startswith(f"--{name}=")]


def test_a_relative_root_becomes_absolute_with_a_working_directory_and_a_time_limit(tmp_path, dataset_root,
                                                                                   monkeypatch, capsys):
    here = tmp_path / "here"
    here.mkdir()
    monkeypatch.chdir(here)
    code, out = write_script(capsys, "--write_sbatch=jobs.sh", "--", "train", *TINY, "--root=runs",
                             "--dataset_root=" + os.path.relpath(dataset_root, here), "--device=cpu",
                             "--replicate=1,2")
    assert code == 0 and "jobs.sh" in out
    text = (here / "jobs.sh").read_text()
    options = sbatch_lines(text)
    assert options["chdir"] == str(here)
    assert options["output"] == f"{here / 'runs' / 'slurm_logs'}/%A_%a.out"
    assert options["error"].startswith(str(here / "runs" / "slurm_logs"))
    assert options["time"] == str(DEFAULT_TIME_MINUTES) == "5"  # the help's default, written out
    assert (here / "runs" / "slurm_logs").is_dir()
    commands = task_commands(text)
    assert len(commands) == 2
    for command in commands:
        assert flag(command, "root") == [str(here / "runs")]
        assert flag(command, "dataset_root") == [str(dataset_root)]
        assert Path(command[0]).is_absolute() and Path(command[1]).name == "open_prune.py"
    assert subprocess.run(["bash", "-n", str(here / "jobs.sh")]).returncode == 0


def test_a_root_from_the_environment_is_carried_in_every_task(tmp_path, dataset_root, monkeypatch, capsys):
    monkeypatch.setenv("OPEN_PRUNE_ROOT", str(tmp_path / "env_root"))
    monkeypatch.chdir(tmp_path)
    code, _ = write_script(capsys, "--write_sbatch=jobs.sh", "--slurm_time=1:30:00", "--", "train", *TINY,
                           f"--dataset_root={dataset_root}", "--device=cpu", "--replicate=1-3")
    assert code == 0
    text = (tmp_path / "jobs.sh").read_text()
    assert sbatch_lines(text)["time"] == "90"
    commands = task_commands(text)
    assert len(commands) == 3 and all(flag(c, "root") == [str(tmp_path / "env_root")] for c in commands)


def test_a_task_of_the_script_runs_from_any_directory(tmp_path, dataset_root, monkeypatch, capsys):
    """Run the script's task 1 with bash, srun standing in for Slurm, from a directory other than
    the one it was written in and without $OPEN_PRUNE_ROOT: the run lands in the root the command named."""
    written_in = tmp_path / "written_in"
    written_in.mkdir()
    monkeypatch.chdir(written_in)
    monkeypatch.setenv("OPEN_PRUNE_ROOT", "relative_root")
    assert write_script(capsys, "--write_sbatch=jobs.sh", "--", "train", *TINY, f"--dataset_root={dataset_root}",
                        "--device=cpu", "--replicate=1,2")[0] == 0
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "srun").write_text('#!/bin/sh\nexec "$@"\n')
    (bin_dir / "srun").chmod(0o755)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {key: value for key, value in os.environ.items() if key != "OPEN_PRUNE_ROOT"}
    env.update(PATH=f"{bin_dir}:{env['PATH']}", SLURM_ARRAY_TASK_ID="1", SLURM_ARRAY_JOB_ID="7")
    result = subprocess.run(["bash", str(written_in / "jobs.sh")], cwd=elsewhere, env=env, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    done = list((written_in / "relative_root").glob("train_*/replicate_2/main/done.json"))
    assert len(done) == 1 and not list(elsewhere.iterdir())
