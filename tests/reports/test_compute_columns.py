"""Parameters and FLOPs end to end: each run's done.json `compute` (counted once by the training
loop) against a hand count of the tiny LeNet and its mask, and the columns in `runs` and `report`."""

from __future__ import annotations

import json

import pytest
import torch

from tests.reports.test_report import report, tables
from tests.reports.test_root import BASE, run_cli

LAYERS = [(784, 16), (16, 8), (8, 10)]  # mnist_lenet_16_8
DENSE_FLOPS = 2 * sum(i * o for i, o in LAYERS)  # 25504
EXAMPLES = 2 * 256  # --training_steps=2ep over the 256 tiny training examples


def compute(directory) -> dict:
    return json.loads((directory / "done.json").read_text())["compute"]


def masked_flops(directory) -> float:
    """2 x sum over layers of (in x out x the layer's density in mask.pt): for a linear layer, 2 FLOPs
    per weight kept."""
    mask = torch.load(directory / "mask.pt", weights_only=True)
    shapes = {tuple(m.shape): float(m.float().mean()) for m in mask.values()}
    assert set(shapes) == {(o, i) for i, o in LAYERS}
    return 2 * sum(i * o * shapes[(o, i)] for i, o in LAYERS)


def test_a_trunk_counts_its_dense_flops_and_parameters(reports_root):
    record = compute(reports_root.dirs["trunk1"])
    assert record["forward_flops_dense"] == DENSE_FLOPS and record["forward_flops"] == pytest.approx(DENSE_FLOPS)
    assert record["speedup"] == pytest.approx(1.0)
    assert record["parameters"] == sum(i * o + o for i, o in LAYERS) and record["prunable"] == DENSE_FLOPS // 2
    assert record["examples_seen"] == EXAMPLES
    assert record["training_flops"] == pytest.approx(3 * DENSE_FLOPS * EXAMPLES)


def test_a_pruned_run_counts_each_layer_at_its_density(reports_root):
    directory = reports_root.dirs["oneshot0.8_1"]
    record = compute(directory)
    expected = masked_flops(directory)
    assert expected < 0.5 * DENSE_FLOPS
    assert record["forward_flops"] == pytest.approx(expected)
    assert record["speedup"] == pytest.approx(DENSE_FLOPS / expected)
    mask = torch.load(directory / "mask.pt", weights_only=True)
    assert record["nonzero_prunable"] == sum(int(m.sum()) for m in mask.values())
    assert record["training_flops"] == pytest.approx(3 * expected * record["examples_seen"])


def test_runs_shows_the_columns(reports_root):
    code, out, err = run_cli("runs", f"--root={reports_root.path}", "--format=json")
    assert code == 0, err
    rows = {row["run"]: row for row in json.loads(out)}
    directory = reports_root.dirs["oneshot0.8_1"]
    row = rows[str(directory.relative_to(reports_root.path))]
    record = compute(directory)
    assert (row["flops"], row["flops_dense"], row["speedup"], row["nonzero"], row["training_flops"]) == (
        record["forward_flops"], record["forward_flops_dense"], record["speedup"], record["nonzero"],
        record["training_flops"])
    code, out, err = run_cli("runs", f"--root={reports_root.path}", "--where=strategy=magnitude")
    assert code == 0, err
    header = out.splitlines()[0].split()
    assert {"nonzero", "flops", "speedup", "training_flops"} <= set(header)
    assert f"{DENSE_FLOPS / record['forward_flops']:.2f}x" in out


def test_report_shows_the_columns_and_a_flops_axis(reports_root, tmp_path):
    text = report(reports_root, tmp_path, "branch", "oneshot", *BASE, "--strategy=magnitude",
                  "--prune_fraction=0.5,0.8", "--replicates=1-2", "--flops_axis")
    reference, *rows = tables(text)["branch oneshot"]
    assert reference["forward FLOPs"] == "25.5K" and reference["speedup"] == "1.00x"
    speedups = [DENSE_FLOPS / masked_flops(reports_root.dirs[f"oneshot0.8_{r}"]) for r in (1, 2)]
    assert rows[1]["speedup"] == f"{sum(speedups) / 2:.2f}x"  # the mean over the replicates
    assert (tmp_path / "accuracy_vs_flops.png").stat().st_size > 0
    csv = pytest.importorskip("pandas").read_csv(tmp_path / "runs.csv")
    assert {"nonzero", "flops", "flops_dense", "speedup", "training_flops"} <= set(csv.columns)
    main = csv[(csv["role"] == "main") & (csv["prune_fraction"] == 0.8)]
    assert sorted(main["flops"]) == pytest.approx(sorted(masked_flops(reports_root.dirs[f"oneshot0.8_{r}"])
                                                        for r in (1, 2)))


def test_a_branch_that_counts_its_own_training_flops_is_shown_with_them():
    from reports.rundirs import compute_of

    done = {"compute": {"forward_flops": 10.0, "training_flops": 300.0, "training_flops_rule": "3 x ..."}}
    table = [["rigl", {"train GFLOPs": 2.5, "density": 0.1}], ["dense (trunk)", {"train GFLOPs": 9.0}]]
    assert compute_of(done, table) == {"forward_flops": 10.0, "training_flops": 2.5e9,
                                       "training_flops_rule": "counted by the branch"}
    assert compute_of(done) == done["compute"] and compute_of({}) == {}
    assert compute_of({"compute": {"forward_flops": float("nan"), "flops": "x"}}) == {"flops": "x"}
