"""`submit` without a cluster: the grid it expands, what counts as done (a branch's branch_done.json
with its unhashed options), --local, the sbatch script it writes, and every bad input as one
line with exit code 2 and nothing written. (tests/cli/test_slurm.py submits to a real Slurm.)"""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

import open_prune
from platforms.slurm import time_minutes
from runs.grid_task import GridTask
from tests.cli.test_train import one_line_error
from tests.conftest import TINY
from tests.slurm_cluster import slurm_conf

GRID_FLAGS = ("--strategy=", "--prune_fraction=", "--replicate=", "--levels=")


def commands(out: str) -> list[list[str]]:
    """The grid's own flags of each listed command line (`python open_prune.py ...`)."""
    return [[arg for arg in shlex.split(line) if arg.startswith(GRID_FLAGS)] for line in out.splitlines()]


def test_the_dry_run_lists_the_grid_in_flag_order_and_leaves_out_what_is_done(cli):
    grid = ["--strategy=magnitude,random", "--prune_fraction=0.5,0.8", "--replicate=1-2"]
    code, out, err = cli("submit", "--dry_run", "--", "branch", "oneshot", *TINY, *grid)
    assert code == 0 and "# 8 of 8 runs to do (0 already done)" in err
    assert commands(out) == [[f"--strategy={s}", f"--prune_fraction={p}", f"--replicate={r}"]  # first flag slowest
                             for s in ("magnitude", "random") for p in ("0.5", "0.8") for r in ("1", "2")]

    code, out, _ = cli("submit", "--local", "--", "branch", "oneshot", *TINY, "--strategy=magnitude",
                       "--prune_fraction=0.5,0.8", "--replicate=1")
    assert code == 0 and out.count("branch oneshot: ") == 2
    code, out, err = cli("submit", "--dry_run", "--", "branch", "oneshot", *TINY, *grid)
    assert "# 6 of 8 runs to do (2 already done)" in err
    left = commands(out)
    assert ["--strategy=magnitude", "--prune_fraction=0.5", "--replicate=1"] not in left and len(left) == 6
    code, out, _ = cli("submit", "--local", "--", "branch", "oneshot", *TINY, "--strategy=magnitude",
                       "--prune_fraction=0.5,0.8", "--replicate=1")
    assert code == 0 and "all 2 runs are already done: nothing submitted" in out


def test_more_levels_are_not_done_and_the_branch_marker_holds_its_table(cli):
    assert cli("submit", "--local", "--", "branch", "iterative", *TINY, "--levels=1")[0] == 0
    code, out, err = cli("submit", "--dry_run", "--", "branch", "iterative", *TINY, "--levels=1,2")
    assert code == 0 and "# 1 of 2 runs to do (1 already done)" in err and commands(out) == [["--levels=2"]]
    branch_dir = Path(cli("branch", "iterative", *TINY, "--levels=1", "--display_output_location")[1].strip())
    marker = json.loads((branch_dir / "branch_done.json").read_text())
    assert marker["options"] == {"imp": {"levels": 1}}
    pruned, kept = 784 * 16 + 16 * 8, 8 * 10  # LeNet 16-8 keeps its output layer in IMP
    density = (pruned - round(0.2 * pruned) + kept) / (pruned + kept)
    assert [row[0] for row in marker["rows"]] == ["0", "1"] and marker["rows"][1][1] == f"{density:.4f}"


def test_train_runs_are_done_when_the_trunk_is(cli):
    assert cli("train", *TINY)[0] == 0
    code, _, err = cli("submit", "--dry_run", "--", "train", *TINY, "--replicate=1,2")
    assert code == 0 and "# 1 of 2 runs to do (1 already done)" in err


def test_the_sbatch_script_is_a_plain_array_that_requeues_on_the_warning(cli, tmp_path):
    script = tmp_path / "jobs.sh"
    code, out, _ = cli("submit", f"--write_sbatch={script}", "--slurm_partition=gpu", "--slurm_time=12:00:00",
                       "--slurm_array_parallelism=1", "--slurm_setup=module load cuda", "--", "train", *TINY,
                       "--replicate=1,2")
    assert code == 0 and f"sbatch {script}" in out
    text = script.read_text()
    for line in ("#SBATCH --array=0-1%1", "#SBATCH --signal=USR1@90", "#SBATCH --time=720", "#SBATCH --partition=gpu",
                 "#SBATCH --requeue", "module load cuda", 'if [ "$code" -eq 138 ]; then'):
        assert line in text
    runs = [line for line in text.splitlines() if line.startswith(("  0)", "  1)"))]
    assert [[arg for arg in shlex.split(run) if arg.startswith("--replicate")] for run in runs] == \
        [["--replicate=1"], ["--replicate=2"]]
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0


@pytest.mark.parametrize("text, minutes", [("90", 90), ("1:30", 2), ("12:00:00", 720), ("2-00:00:00", 2880),
                                           ("1-12", 2160), ("0:0:30", 1)])
def test_slurm_times_become_minutes(text, minutes):
    assert time_minutes(text) == minutes


def test_a_requeued_task_runs_the_same_command_again():
    task = GridTask(["train", "--replicate=2"])
    again = task.checkpoint()
    assert isinstance(again.function, GridTask) and again.function.argv == task.argv and again.args == ()


@pytest.mark.parametrize("argv, needle", [
    (["submit", "train"], "needs the command after --"),
    (["submit", "--", "branch", "nosuch"], "unknown branch"),
    (["submit", "--", "train", *TINY, "--replicate=5-1"], "neither an integer nor a range"),
    (["submit", "--", "train", *TINY, "--replicate=1-x"], "neither an integer nor a range"),
    (["submit", "--slurm_partitionn=gpu", "--", "train", *TINY], "unknown Slurm option --slurm_partitionn"),
    (["submit", "--slurm_time=soon", "--", "train", *TINY], "not a Slurm time"),
    (["submit", "--local", "--dry_run", "--", "train", *TINY], "not allowed with argument"),
    (["submit", "--dry_run", "--", "train", *TINY, "--model_name=mnist_resnet_9"], "unknown model"),
])
def test_bad_submissions_are_one_line_and_write_nothing(cli, argv, needle):
    code, _, err = cli(*argv)
    one_line_error(code, err, needle)
    assert not cli.root.exists()


def test_nothing_after_the_separator_is_one_line(capsys):
    code = open_prune.main(["submit", "--dry_run", "--"])
    one_line_error(code, capsys.readouterr().err, "nothing to submit after --")


def test_an_unreachable_slurm_is_one_line_naming_sinfos_error(cli, tmp_path, monkeypatch):
    if shutil.which("sinfo") is None:
        pytest.skip("sinfo is not installed (slurm-wlm): `make test` installs it as root")
    conf = tmp_path / "slurm.conf"  # a cluster whose controller is not running
    conf.write_text(slurm_conf(tmp_path, "nowhere", tmp_path / "munge.socket", message_timeout=1))
    monkeypatch.setenv("SLURM_CONF", str(conf))
    code, _, err = cli("submit", "--", "train", *TINY)
    one_line_error(code, err, "Slurm is not reachable: sinfo failed: ", "--local")
    assert not cli.root.exists()


def test_without_sinfo_submit_says_what_to_do_instead(cli, monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    code, _, err = cli("submit", "--", "train", *TINY)
    one_line_error(code, err, "sinfo is not installed", "--local", "--write_sbatch")
