"""The sparse-training branches end to end on the tiny MNIST fixture: each trains, writes its
final mask and updates beside its run, reports its controls, refuses bad flags in one line, and a
run killed anywhere resumes to the very weights and masks of the run never killed."""

from __future__ import annotations

import json

import pytest
import torch

import runs.branch
from tests.cli.test_train import Kill
from tests.conftest import TINY

SPARSE = {
    "static-sparse": ["--train_density=0.3"],
    "set": ["--train_density=0.3", "--update_every=2it"],
    "rigl": ["--train_density=0.3", "--update_every=2it"],
    "gmp": ["--final_density=0.3", "--prune_every=2it"],
}


def branch_dir(root, name):
    return next(root.rglob(f"branch_{name}_*"))


def load(path):
    return torch.load(path, weights_only=True)


@pytest.mark.parametrize("name", list(SPARSE))
def test_each_branch_trains_with_its_final_mask_and_updates(cli, name):
    code, out, err = cli("branch", name, *TINY, *SPARSE[name])
    assert code == 0, err
    directory = branch_dir(cli.root, name)
    final_mask, start_mask = load(directory / "mask.pt"), load(directory / "training" / "mask.pt")
    weights = load(directory / "training" / "model_ep3_it0.pt")
    for layer, kept in final_mask.items():
        assert torch.all(weights[layer][~kept] == 0)  # pruned weights are exactly zero at the end
    updates = json.loads((directory / "updates.json").read_text())["updates"]
    assert updates[0][0] == 0 and len(updates) >= (1 if name == "static-sparse" else 2)
    marker = json.loads((directory / "branch_done.json").read_text())
    labels = [row[0] for row in marker["results"]]
    assert labels[0] == name and labels[-1] == "dense (trunk)"
    assert marker["metrics"]["test_accuracy"] is not None
    if name in ("set", "rigl", "static-sparse"):  # the counts of the random start never change
        assert {k: int(v.sum()) for k, v in final_mask.items()} == {k: int(v.sum()) for k, v in start_mask.items()}
    density = json.loads((directory / "sparsity.json").read_text())["density"]
    assert 0.29 < density < 0.35  # the output layer of an MLP stays dense (the RigL code's MNIST choice)


def test_the_controls_are_reported_beside_the_method(cli):
    assert cli("branch", "static-sparse", *TINY, *SPARSE["static-sparse"])[0] == 0
    assert cli("branch", "rigl", *TINY, *SPARSE["rigl"])[0] == 0
    marker = json.loads((branch_dir(cli.root, "rigl") / "branch_done.json").read_text())
    rows = dict((row[0], row[1]) for row in marker["results"])
    assert list(rows) == ["rigl", "static random (same densities)", "dense (trunk)"]
    assert rows["rigl"]["density"] == rows["static random (same densities)"]["density"]
    # RigL pays a dense weight gradient at its update steps: more FLOPs than the static mask
    assert rows["static random (same densities)"]["train FLOPs / dense"] < rows["rigl"]["train FLOPs / dense"] < 1
    code, out, err = cli("report", "branch", "rigl", *TINY, *SPARSE["rigl"])
    assert code == 0, err
    report = next(cli.root.rglob("report.md")).read_text()
    assert "static random (same densities)" in report and "train FLOPs / dense" in report


@pytest.mark.parametrize("name, kill_at", [("rigl", 5), ("rigl", 8), ("set", 6), ("gmp", 7), ("gmp", 9)])
def test_a_killed_run_resumes_bitwise(cli, tmp_path, monkeypatch, name, kill_at):
    flags = [*TINY, *SPARSE[name], "--checkpoint_every=3it"]
    assert cli("branch", name, *flags, root_dir=tmp_path / "whole")[0] == 0
    real_train = runs.branch.train

    def train_then_kill(*args, **kwargs):
        return real_train(*args, **{**kwargs, "hooks": [*kwargs.get("hooks", ()), Kill(kill_at)]})

    monkeypatch.setattr(runs.branch, "train", train_then_kill)
    code, _, err = cli("branch", name, *flags, root_dir=tmp_path / "killed")
    assert code == 130 and "resume" in err
    killed = branch_dir(tmp_path / "killed", name)
    assert (killed / "training" / "checkpoint.pt").exists()
    monkeypatch.setattr(runs.branch, "train", real_train)
    assert cli("branch", name, *flags, root_dir=tmp_path / "killed")[0] == 0
    whole = branch_dir(tmp_path / "whole", name)
    for file in ("training/model_ep3_it0.pt", "mask.pt"):
        a, b = load(whole / file), load(killed / file)
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), file
    for file in ("updates.json", "training/metrics.jsonl"):
        assert (whole / file).read_text() == (killed / file).read_text(), file


@pytest.mark.parametrize("name, flags, needles", [
    ("rigl", ["--train_density=1.5"], ["train_density=1.5", "(0, 1]"]),
    ("rigl", ["--train_density=0.3", "--first_layer=half"], ["first_layer", "dense, allocated"]),
    ("rigl", ["--train_density=0.3", "--drop_fraction=1.5"], ["drop_fraction"]),
    ("rigl", ["--train_density=0.3", "--update_every=1ep", "--update_end=0.1"], ["no mask update"]),
    ("set", ["--train_density=0.3", "--allocation=fancy"], ["allocation"]),
    ("gmp", ["--final_density=0.5", "--initial_density=0.3"], ["only removes"]),
    ("gmp", ["--final_density=0.5", "--end_step=99ep"], ["end_step", "beyond"]),
    ("static-sparse", ["--train_density=0.3", "--output_layer=0"], ["output_layer=0", "(0, 1]"]),
])
def test_bad_flags_get_one_line(cli, name, flags, needles):
    code, out, err = cli("branch", name, *TINY, *flags)
    assert code != 0
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert "Traceback" not in err
    assert all(needle in err for needle in needles), err
    assert len(lines) <= 2, err
