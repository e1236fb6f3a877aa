"""`representations` end to end on tiny real runs: a trunk and a two-level iterative branch trained
through the CLI. The similarity of the first layers is checked against a hand-written forward pass,
the accuracies against the runs' own done.json, a run against itself against the closed form."""

from __future__ import annotations

import contextlib
import csv
import io
import json
from pathlib import Path

import pytest
import torch

import datasets.registry
import open_prune
from foundations.bundles import DatasetHparams
from reports.representations import chosen_examples, exemplar_rows, load_run
from reports.similarity import linear_cka_gram
from tests.conftest import TINY
from tests.tiny_data import write_tiny_mnist

FLAGS = [flag for flag in TINY if not flag.startswith("--training_steps=")] + ["--training_steps=2ep"]


def run_cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = open_prune.main(list(argv))
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """(place flags, trunk dir, branch dir, out parent) of a tiny trunk and its 2-level IMP branch."""
    base = tmp_path_factory.mktemp("representations")
    place = [f"--root={base / 'runs'}", f"--dataset_root={write_tiny_mnist(base / 'data')}", "--device=cpu"]
    datasets.registry.clear_cache()
    for command in (["train", *FLAGS], ["branch", "iterative", *FLAGS, "--levels=2"]):
        code, _, err = run_cli(*command, *place)
        assert code == 0, err
    trunk = next((base / "runs").glob("train_*/replicate_1/main"))
    branch = next(trunk.parent.glob("branch_iterative_*"))
    return place, trunk, branch, base


def _csv(path: Path) -> list[dict]:
    with open(path) as handle:
        return list(csv.DictReader(handle))


def test_trunk_against_each_level(runs):
    place, trunk, branch, base = runs
    out = base / "out_levels"
    code, text, err = run_cli("representations", str(trunk), str(branch), "--examples=0", f"--out={out}", *place)
    assert code == 0, err
    rows = _csv(out / "similarity.csv")
    assert {row["b"] for row in rows} == {"level_1", "level_2"}
    layers = ["fc_layers.0", "fc_layers.1", "fc"]  # mnist_lenet_16_8: every prunable module, in order
    assert [(row["layer_a"], row["layer_b"]) for row in rows if row["b"] == "level_1"] == \
        [(a, b) for a in layers for b in layers]
    assert all(0 <= float(row["cka"]) <= 1 + 1e-9 and 0 <= float(row["procrustes"]) <= 2 for row in rows)
    for name in ("cka.png", "procrustes.png", "exemplars.csv", "about.txt"):
        assert (out / name).is_file()
    assert "fc_layers.0" in text and "forgotten" in text

    # the accuracies are the runs' own (the whole test set, weights masked)
    every = {row["b"]: row for row in _csv(out / "exemplars.csv") if row["class"] == "all"}
    trunk_accuracy = json.loads((trunk / "done.json").read_text())["metrics"]["test_accuracy"]
    for level in (1, 2):
        done = json.loads((branch / f"level_{level}" / "done.json").read_text())
        assert float(every[f"level_{level}"]["accuracy_a"]) == pytest.approx(trunk_accuracy)
        assert float(every[f"level_{level}"]["accuracy_b"]) == pytest.approx(done["metrics"]["test_accuracy"])


def _first_layer_by_hand(run_dir: Path, dataset_root: str, chosen: torch.Tensor) -> torch.Tensor:
    """x W0ᵀ + b0 with the saved weights times the mask, on the normalized test images."""
    state = torch.load(run_dir / "model_ep2_it0.pt", weights_only=True)  # the end of --training_steps=2ep
    weight = state["fc_layers.0.weight"]
    if (run_dir / "mask.pt").exists():
        weight = weight * torch.load(run_dir / "mask.pt", weights_only=True)["fc_layers.0.weight"]
    loader = datasets.registry.get(DatasetHparams(dataset_name="mnist", batch_size=1000), "test",
                                   root=Path(dataset_root), device="cpu")
    images = torch.cat([x for x, _ in loader.batches(0)])[chosen]
    return images.reshape(len(chosen), -1) @ weight.T + state["fc_layers.0.bias"]


def test_first_layer_cka_equals_a_hand_forward(runs):
    place, trunk, branch, base = runs
    out = base / "out_pair"
    level = branch / "level_2"
    code, _, err = run_cli("representations", str(trunk), str(level), "--examples=40", "--seed=3",
                           "--layers=fc_layers.0", f"--out={out}", *place)
    assert code == 0, err
    [row] = _csv(out / "similarity.csv")
    chosen = chosen_examples(64, 40, 3)
    dataset_root = place[1].split("=", 1)[1]
    expected = linear_cka_gram(_first_layer_by_hand(trunk, dataset_root, chosen),
                               _first_layer_by_hand(level, dataset_root, chosen))
    assert float(row["cka"]) == pytest.approx(expected, abs=1e-6)


def test_a_run_against_itself_and_level_zero_is_the_trunk(runs):
    place, trunk, branch, base = runs
    code, text, err = run_cli("representations", str(trunk), str(branch / "level_0"), "--format=json",
                              f"--out={base / 'out_self'}", *place)
    assert code == 0, err
    result = json.loads(text)
    assert result["b"] == [str(trunk)]
    for row in result["similarity"]:
        if row["layer_a"] == row["layer_b"]:
            assert row["cka"] == pytest.approx(1.0, abs=1e-9) and row["procrustes"] == pytest.approx(0.0, abs=1e-6)
    assert all(row["a_only"] == 0 and row["b_only"] == 0 for row in result["exemplars"])


def test_paths_relative_to_root_and_default_out(runs):
    place, trunk, branch, base = runs
    root = base / "runs"
    code, _, err = run_cli("representations", str(trunk.relative_to(root)),
                           str((branch / "level_1").relative_to(root)), "--examples=20", *place)
    assert code == 0, err
    assert len(list((root / "reports" / "representations").glob("*/similarity.csv"))) == 1


@pytest.mark.parametrize("argv, needle", [
    (["{trunk}", "{branch}", "--layers=nope"], "no module 'nope'"),
    (["{trunk}", "{trunk}", "--levels=1"], "--levels is for a branch dir"),
    (["{trunk}", "{branch}", "--levels=7"], "no level_7"),
    (["{trunk}", "{base}/missing"], "does not exist"),
    (["{trunk}", "{branch}", "--out={trunk}/inside"], "inside the run tree"),
    (["{branch}", "{trunk}"], "holds no saved weights"),
])
def test_bad_input_is_one_line(runs, argv, needle):
    place, trunk, branch, base = runs
    argv = [a.format(trunk=trunk, branch=branch, base=base) for a in argv]
    code, _, err = run_cli("representations", *argv, *place)
    assert code == 2, err
    assert err.count("\n") == 1 and err.startswith("open_prune: error:") and needle in err, err


def test_exemplars_hand_case():
    """Labels 0 0 0 1 1; A right on 0,1,3; B right on 0,2,3,4: A-only is example 1 (class 0)."""
    labels = torch.tensor([0, 0, 0, 1, 1])
    a = torch.tensor([0, 0, 1, 1, 0])
    b = torch.tensor([0, 1, 0, 1, 1])
    rows = {row["class"]: row for row in exemplar_rows(labels, a, b, 2)}
    assert (rows[0]["examples"], rows[0]["a_only"], rows[0]["b_only"]) == (3, 1, 1)
    assert (rows[1]["examples"], rows[1]["a_only"], rows[1]["b_only"]) == (2, 0, 1)
    assert rows[0]["forgotten"] == pytest.approx(1 / 3) and rows[1]["forgotten"] == 0
    assert rows[0]["accuracy_a"] == pytest.approx(2 / 3) and rows[1]["accuracy_b"] == 1.0
    assert (rows["all"]["examples"], rows["all"]["a_only"], rows["all"]["b_only"]) == (5, 1, 2)


def test_load_run_applies_the_mask(runs):
    _, _, branch, _ = runs
    run = load_run(branch / "level_2")
    mask = torch.load(branch / "level_2" / "mask.pt", weights_only=True)
    weights = dict(run.model.named_parameters())
    assert all(bool((weights[name][~kept] == 0).all()) for name, kept in mask.items())
    assert run.density < 1


def _files(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*")
            if p.is_file() and "reports" not in p.relative_to(root).parts}


def test_reading_touches_no_run(runs):
    place, trunk, branch, base = runs
    before = _files(base / "runs")
    code, _, err = run_cli("representations", str(trunk), str(branch), "--examples=16", *place)
    assert code == 0, err
    assert _files(base / "runs") == before
