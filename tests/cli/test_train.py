"""`open_prune.py train` end to end on a tiny dataset: files, skipping, resume, determinism, bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.conftest import TINY
from training import loop
from training.hooks import Hook

REPO = Path(__file__).resolve().parents[2]


def run_dir(cli, *extra) -> Path:
    code, out, _ = cli("train", *TINY, *extra, "--display_output_location")
    assert code == 0
    return Path(out.strip())


def test_no_command_lists_the_commands():
    result = subprocess.run([sys.executable, "open_prune.py"], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0
    assert "train " in result.stdout and "branch " in result.stdout


def test_train_help_groups_every_flag_with_its_default():
    result = subprocess.run([sys.executable, "open_prune.py", "train", "--default_hparams=cifar_resnet_20", "--help"],
                            cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0
    for group in ("Dataset Hyperparameters", "Model Hyperparameters", "Training Hyperparameters", "Platform", "Job"):
        assert group in result.stdout
    assert "--milestone_steps" in result.stdout and "'80ep,120ep'" in result.stdout


def test_train_writes_the_run_directory_and_a_rerun_skips(cli):
    code, out, err = cli("train", *TINY, "--weight_save_steps=1ep2it")
    assert code == 0, err
    path = run_dir(cli, "--weight_save_steps=1ep2it")
    names = sorted(p.name for p in path.iterdir() if not p.name.startswith("."))
    assert names == ["done.json", "hparams.json", "hparams.log", "metrics.jsonl", "model_ep0_it0.pt",
                     "model_ep1_it2.pt", "model_ep3_it0.pt"]
    stored = json.loads((path / "hparams.json").read_text())
    assert stored["hparams"]["training"]["lr"] == 0.1 and set(stored["seeds"]) == {"init", "data_order",
                                                                                    "transformation"}
    records = [json.loads(line) for line in (path / "metrics.jsonl").read_text().splitlines()]
    assert all(set(r) == {"iteration", "step", "name", "value"} for r in records)
    accuracy = [r for r in records if r["name"] == "test_accuracy"]
    assert [r["iteration"] for r in accuracy] == [0, 4, 8, 12]
    assert accuracy[-1]["value"] > 0.8  # the tiny task is learnable: the loop really trains
    # a model file is a plain state dict that torch alone can load
    state = torch.load(path / "model_ep3_it0.pt", weights_only=True)
    assert set(state) == {"fc_layers.0.weight", "fc_layers.0.bias", "fc_layers.1.weight", "fc_layers.1.bias",
                          "fc.weight", "fc.bias"}
    before = {p.name: p.stat().st_mtime_ns for p in path.iterdir()}
    code, out, _ = cli("train", *TINY, "--weight_save_steps=1ep2it")
    assert code == 0 and "already finished" in out
    assert {p.name: p.stat().st_mtime_ns for p in path.iterdir()} == before


def test_same_command_gives_bitwise_equal_weights(cli, tmp_path):
    cli("train", *TINY, root_dir=tmp_path / "a")
    cli("train", *TINY, root_dir=tmp_path / "b")
    a = torch.load(next((tmp_path / "a").rglob("model_ep3_it0.pt")), weights_only=True)
    b = torch.load(next((tmp_path / "b").rglob("model_ep3_it0.pt")), weights_only=True)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_replicates_differ_and_live_side_by_side(cli):
    first, second = run_dir(cli, "--replicate=1"), run_dir(cli, "--replicate=2")
    assert first.parent.parent == second.parent.parent and first != second
    cli("train", *TINY, "--replicate=1")
    cli("train", *TINY, "--replicate=2")
    a = torch.load(first / "model_ep0_it0.pt", weights_only=True)
    b = torch.load(second / "model_ep0_it0.pt", weights_only=True)
    assert not torch.equal(a["fc.weight"], b["fc.weight"])


class Kill(Hook):
    """Interrupt training once, as a kill would, after a given step."""

    def __init__(self, at: int):
        self.at = at

    def after_optimizer_step(self, state):
        if state.iteration == self.at:
            raise KeyboardInterrupt


@pytest.mark.parametrize("kill_at", [6, 9])
def test_a_killed_run_resumes_bitwise_equal(cli, tmp_path, monkeypatch, kill_at):
    cli("train", *TINY, "--eval_every=3it", root_dir=tmp_path / "whole")
    real_train = loop.train

    def train_then_kill(*args, **kwargs):
        return real_train(*args, **{**kwargs, "hooks": [*kwargs.get("hooks", ()), Kill(kill_at)]})

    import runs.trunk
    monkeypatch.setattr(runs.trunk, "train", train_then_kill)
    code, _, err = cli("train", *TINY, "--eval_every=3it", root_dir=tmp_path / "killed")
    assert code == 130 and "resume" in err
    killed_dir = next((tmp_path / "killed").rglob("main"))
    assert (killed_dir / "checkpoint.pt").exists() and not (killed_dir / "done.json").exists()
    monkeypatch.setattr(runs.trunk, "train", real_train)
    assert cli("train", *TINY, "--eval_every=3it", root_dir=tmp_path / "killed")[0] == 0
    whole_dir = next((tmp_path / "whole").rglob("main"))
    for name in ("model_ep3_it0.pt", "model_ep0_it0.pt"):
        a, b = (torch.load(d / name, weights_only=True) for d in (whole_dir, killed_dir))
        assert all(torch.equal(a[k], b[k]) for k in a)
    assert (whole_dir / "metrics.jsonl").read_text() == (killed_dir / "metrics.jsonl").read_text()


def test_display_output_location_creates_nothing(cli):
    path = run_dir(cli)
    assert path.name == "main" and path.parent.name == "replicate_1" and path.parent.parent.name.startswith("train_")
    assert not cli.root.exists()


def test_a_non_finite_loss_stops_with_one_line_and_no_done(cli):
    code, _, err = cli("train", *TINY, "--lr=1e30")
    assert code == 2 and "lower --lr" in err and err.count("\n") == 1
    assert not any(cli.root.rglob("done.json"))


def one_line_error(code: int, err: str, *needles: str) -> None:
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("open_prune: error:"), err
    for needle in needles:
        assert needle in err, err


@pytest.mark.parametrize("flag, needles", [
    ("--model_name=mnist_resnet_9", ["unknown model", "lenet"]),
    ("--dataset_name=svhn", ["unknown dataset", "cifar10"]),
    ("--training_steps=3epochs", ["not a step"]),
    ("--subsample_fraction=1.5", ["outside"]),
    ("--random_labels_fraction=-0.5", ["outside"]),
    ("--optimizer_name=lion", ["invalid choice"]),
    ("--model_init=zeros", ["zeros"]),
    ("--precision=bf16", ["CUDA"]),
])
def test_bad_flags_are_one_clear_line(cli, flag, needles):
    code, _, err = cli("train", *TINY, flag)
    one_line_error(code, err, *needles)


def test_unknown_default_hparams_is_one_line(cli):
    one_line_error(*cli("train", "--default_hparams=mnist_transformer")[::2], "mnist_transformer")


def test_missing_dataset_names_where_it_must_go(tmp_path, capsys):
    import open_prune
    code = open_prune.main(["train", *TINY, f"--root={tmp_path / 'r'}", f"--dataset_root={tmp_path / 'empty'}"])
    err = capsys.readouterr().err
    one_line_error(code, err, str(tmp_path / "empty"))


def test_conflicting_stored_hparams_are_never_overwritten(cli):
    assert cli("train", *TINY)[0] == 0
    path = run_dir(cli)
    stored = json.loads((path / "hparams.json").read_text())
    stored["hparams"]["training"]["lr"] = 0.5
    (path / "hparams.json").write_text(json.dumps(stored))
    (path / "done.json").unlink()
    before = (path / "model_ep3_it0.pt").read_bytes()
    code, _, err = cli("train", *TINY)
    one_line_error(code, err, "different hparams")
    assert (path / "model_ep3_it0.pt").read_bytes() == before
    assert json.loads((path / "hparams.json").read_text())["hparams"]["training"]["lr"] == 0.5


def test_a_corrupt_checkpoint_is_one_line_and_kept(cli):
    path = run_dir(cli)
    path.mkdir(parents=True)
    cli("train", *TINY, "--training_steps=0ep")  # writes hparams for a different (0ep) run elsewhere
    (path / "checkpoint.pt").write_bytes(b"not a checkpoint")
    code, _, err = cli("train", *TINY)
    one_line_error(code, err, "checkpoint.pt", "delete it")
    assert (path / "checkpoint.pt").read_bytes() == b"not a checkpoint"


def test_errors_from_a_subprocess_have_no_traceback(tmp_path):
    env = {**os.environ, "OPEN_PRUNE_ROOT": str(tmp_path)}
    result = subprocess.run([sys.executable, "open_prune.py", "train", "--default_hparams=fashionmnist_lenet_300_100",
                             "--training_steps=banana"], cwd=REPO, capture_output=True, text=True, env=env)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr and result.stderr.count("\n") == 1 and "banana" in result.stderr


class Poison(Hook):
    """Make the weights non-finite after a given step, as a diverging run would."""

    def __init__(self, at: int):
        self.at = at

    def after_optimizer_step(self, state):
        if state.iteration == self.at:
            with torch.no_grad():
                next(state.model.parameters()).fill_(float("nan"))


def test_divergence_keeps_the_last_good_checkpoint(cli, monkeypatch):
    import runs.trunk
    real_train = loop.train
    monkeypatch.setattr(runs.trunk, "train",
                        lambda *a, **k: real_train(*a, **{**k, "hooks": [*k.get("hooks", ()), Poison(5)]}))
    code, _, err = cli("train", *TINY)
    one_line_error(code, err, "before step 2ep0it", "last good checkpoint")
    path = run_dir(cli)
    saved = torch.load(path / "checkpoint.pt", weights_only=True)
    assert saved["iteration"] == 4  # the epoch-1 checkpoint, written before the weights went bad
    assert all(torch.isfinite(v).all() for v in saved["model"].values())
    assert not (path / "done.json").exists()


def test_saves_and_evaluations_asked_of_a_finished_trunk_come_from_a_replay_not_a_new_trunk(cli, tmp_path):
    """--weight_save_steps and --eval_every are observation only: the same trunk (its branches kept),
    and what it lacks is exactly what a run that had asked for it from the start holds."""
    assert cli("train", *TINY)[0] == 0
    trunk = run_dir(cli)
    assert cli("branch", "oneshot", *TINY, "--strategy=magnitude", "--prune_fraction=0.5")[0] == 0
    extra = ["--weight_save_steps=1ep2it,2ep", "--eval_every=5it"]
    assert run_dir(cli, *extra) == trunk  # the same directory: no new trunk, no orphaned branch
    code, _, err = cli("train", *TINY, *extra)
    assert code == 0 and "replaying the trunk" in err
    reference = tmp_path / "from_the_start"  # a trunk that asked for them from its first step
    assert cli("train", *TINY, *extra, root_dir=reference)[0] == 0
    twin = reference / trunk.relative_to(cli.root)
    for name in ("model_ep1_it2.pt", "model_ep2_it0.pt"):
        mine, theirs = (torch.load(d / name, weights_only=True) for d in (trunk, twin))
        assert mine.keys() == theirs.keys() and all(torch.equal(mine[k], theirs[k]) for k in mine)

    def tests_by_iteration(path: Path) -> dict:
        records = [json.loads(line) for line in (path / "metrics.jsonl").read_text().splitlines()]
        return {(r["iteration"], r["name"]): r["value"] for r in records if r["name"].startswith("test_")}

    mine, theirs = tests_by_iteration(trunk), tests_by_iteration(twin)
    assert theirs.items() <= mine.items()  # every evaluation the twin made, bitwise (the epoch ends stay too)
    assert {i for i, _ in mine} == {0, 4, 5, 8, 10, 12}
    stamps = {p: p.stat().st_mtime_ns for p in trunk.iterdir()}
    code, _, err = cli("train", *TINY, *extra)  # asked again: nothing is missing, nothing replayed
    assert code == 0 and "replaying" not in err and stamps == {p: p.stat().st_mtime_ns for p in trunk.iterdir()}


def test_a_run_records_once_where_it_ran_and_runs_can_select_by_it(cli, capsys):
    import platform as python_platform
    import socket

    import open_prune

    assert cli("train", *TINY)[0] == 0
    path = run_dir(cli)
    stored = json.loads((path / "hparams.json").read_text())
    environment = stored["environment"]
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout.strip()
    assert environment["torch"] == torch.__version__ and environment["python"] == python_platform.python_version()
    assert environment["hostname"] == socket.gethostname() and environment["processes"] == 1
    assert environment["device"] == "cpu" and environment["threads"] == torch.get_num_threads()
    assert environment["git_commit"] == head and isinstance(environment["git_dirty"], bool)
    assert path.name == run_dir(cli).name  # not hashed
    stamp = (path / "hparams.json").stat().st_mtime_ns
    assert cli("train", *TINY)[0] == 0 and (path / "hparams.json").stat().st_mtime_ns == stamp  # written once

    def listed(*where: str) -> list:
        code = open_prune.main(["runs", f"--root={cli.root}", "--format=json", *where])
        out = capsys.readouterr().out
        assert code == 0
        return json.loads(out)

    assert [row["torch"] for row in listed(f"--where=torch={torch.__version__}")] == [torch.__version__]
    assert listed("--where=torch=0.0.1") == []
