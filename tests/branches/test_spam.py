"""`branch spam` end to end: the table and its cells, exact sparsities, the MAP Laplace by hand, reruns
and extended sweeps, structured removal with fine-tuning, 2:4, and bad input."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch

from bayes import fit_curvature, posterior_precision_diagonal
from branches.spam.calibration import evaluate_calibration
from branches.spam.sweep import masked_copy
from pruning import prune
from pruning.mask import Mask
from pruning.scores.opd import scalar_prior
from tests.branches.test_spam_training import trunk_of
from tests.cli.test_branches import load, location
from tests.cli.test_train import one_line_error
from tests.conftest import TINY

FAST = [*TINY, "--marglik_frequency=1", "--hyper_steps=10"]
SWEEP = ["--criteria=opd,post_only,magnitude,random", "--sparsities=25,50,90"]
EXACT = [*SWEEP, "--ranking=exact"]


def cell(path: Path, name: str) -> dict:
    return json.loads((path / "cells" / f"{name}.json").read_text())


def stamps(path: Path) -> dict[str, int]:
    """Modification times of every file of a branch but its lock and its own branch_done.json (which
    every command rewrites with its options)."""
    return {str(p): p.stat().st_mtime_ns for p in path.rglob("*")
            if p.is_file() and p.name != ".lock" and p != path / "branch_done.json"}


def test_the_sweep_table_cells_and_the_map_laplace_by_hand(cli, dataset_root):
    code, out, err = cli("branch", "spam", *FAST, *EXACT)
    assert code == 0, err
    path = location(cli, "branch", "spam", *FAST, *EXACT)
    rows = list(csv.reader((path / "table.csv").open()))
    assert rows[0] == ["sparsity %", *[f"{m}/{c}" for m in ("spam", "map")
                                       for c in ("opd", "post_only", "magnitude", "random")]]
    assert [r[0] for r in rows[1:]] == ["0 (dense)", "25", "50", "90"]
    assert "spam/opd" in out and "map/random" in out  # the printed table
    assert "+ft" not in out  # no fine-tuning asked for, none mentioned
    table = json.loads((path / "table.json").read_text())
    assert len(table["cells"]) == 2 + 2 * 4 * 3
    for record in table["cells"]:  # exactly round(s * total) removed, every metric present
        assert record["kept"] == record["total"] - round(record["sparsity"] / 100 * record["total"])
        assert {"accuracy", "nll", "brier", "ece"} <= set(record)
    at_90 = {c["model"]: c["accuracy"] for c in table["cells"] if c["criterion"] == "opd" and c["sparsity"] == 90}
    headline = json.loads((path / "branch_done.json").read_text())["headline"]  # what `runs` and `tree` show
    assert headline == [["sparsity %", 90], ["spam opd", at_90["spam"]], ["map opd", at_90["map"]]]
    # the MAP comparison by hand: a Laplace at the trunk's final weights, prior N * wd = 256 * 1e-4
    trunk = trunk_of(cli, dataset_root, [*FAST, *EXACT])
    model = trunk.model_at(trunk.end_step)
    assert json.loads((path / "map" / "laplace.json").read_text())["prior_precision"] == pytest.approx(0.0256)
    curvature = fit_curvature(model, trunk.loader(True).batches(0), "classification", "diag_ef")
    posterior = posterior_precision_diagonal(curvature, scalar_prior(model, 0.0256),
                                             names=[n for n, _ in model.named_parameters()])
    saved = load(path / "map" / "posterior_precision.pt")
    for name in posterior:
        torch.testing.assert_close(saved[name], posterior[name])
    weights = dict(model.named_parameters())
    opd = {n: weights[n].detach().square() * posterior[n] for n in model.prunable_layer_names}
    mask = prune(opd, Mask.ones_like(model), 0.5)
    by_hand = evaluate_calibration(masked_copy(model, mask), trunk.loader(False), bins=10)
    recorded = cell(path, "map_opd_50")
    assert {k: recorded[k] for k in by_hand} == pytest.approx(by_hand, abs=1e-12)
    assert recorded["accuracy"] > cell(path, "map_random_90")["accuracy"]  # the control does worse

    # a rerun trains and evaluates nothing and prints the same table
    before = stamps(path)
    assert cli("branch", "spam", *FAST, *EXACT)[1] == out
    assert stamps(path) == before
    # more sparsities extend the same branch: only the new cells are evaluated
    wider = ["--criteria=opd,magnitude", "--sparsities=25,50,75", "--ranking=exact"]
    assert location(cli, "branch", "spam", *FAST, *wider) == path
    assert cli("branch", "spam", *FAST, *wider)[0] == 0
    changed = {p for p, t in stamps(path).items() if before.get(p) != t}
    new_cells = {Path(p).name for p in changed if Path(p).parent.name == "cells"}
    assert new_cells == {f"{m}_{c}_75.json" for m in ("spam", "map") for c in ("opd", "magnitude")}


def test_neurons_are_removed_counted_and_fine_tuned_under_their_masks(cli):
    argv = [*FAST, "--structure=neurons", "--sparsities=50", "--criteria=opd,random", "--finetune_steps=1ep"]
    code, out, err = cli("branch", "spam", *argv)
    assert code == 0, err
    path = location(cli, "branch", "spam", *argv)
    record = cell(path, "spam_opd_50")
    # by hand: lenet_16_8 keeps 8 and 4 neurons: 784*8+8 + 8*4+4 + 4*10+10 parameters
    assert record["parameters"] == 784 * 8 + 8 + 8 * 4 + 4 + 4 * 10 + 10
    assert record["macs"] == 784 * 8 + 8 * 4 + 4 * 10 and record["flops"] == 2 * record["macs"]
    assert cell(path, "spam_dense")["parameters"] == 784 * 16 + 16 + 16 * 8 + 8 + 8 * 10 + 10
    tuned = Path(record["finetuned"]["run"])
    mask, final = load(tuned / "mask.pt"), load(tuned / "model_ep1_it0.pt")
    for name in ("fc_layers.0.weight", "fc_layers.1.weight"):
        alive = mask[name].any(dim=1)
        assert int(alive.sum()) == mask[name].shape[0] // 2 and (mask[name][alive].all())  # whole neurons
        assert (final[name][~mask[name]] == 0).all()  # pruned weights stayed zero while fine-tuning
    assert "spam/opd+ft" in out and "params" in out and "(+ft: after fine-tuning)" in out
    lrs = [json.loads(line)["value"] for line in (tuned / "metrics.jsonl").read_text().splitlines()
           if json.loads(line)["name"] == "lr"]
    assert lrs == pytest.approx([1e-4, 1e-4])  # the authors': opd at 1e-3 x the trunk's lr 0.1, constant
    assert record["finetuned"]["lr"] == pytest.approx(1e-4) and record["finetuned"]["steps"] == "1ep"
    assert cell(path, "spam_random_50")["finetuned"]["lr"] == pytest.approx(1e-5)  # baselines: 1e-4 x lr


def test_the_published_data_driven_criteria_prune_too(cli):
    argv = [*FAST, "--criteria=snip,grasp,synflow", "--sparsities=50"]
    code, out, err = cli("branch", "spam", *argv)
    assert code == 0, err
    path = location(cli, "branch", "spam", *argv)
    for name in ("spam_snip10_50", "map_grasp10_50", "spam_synflow_50"):
        assert cell(path, name)["density"] == 0.5
    assert "map/grasp10" in out


def test_two_of_four_keeps_half_of_every_group(cli):
    argv = [*FAST, "--structure=2:4", "--criteria=opd,magnitude"]
    code, out, err = cli("branch", "spam", *argv)
    assert code == 0, err
    path = location(cli, "branch", "spam", *argv)
    assert "50 (2:4)" in out
    for name in ("spam_opd_50", "map_magnitude_50"):
        assert cell(path, name)["density"] == 0.5


@pytest.mark.parametrize("flags, needles", [
    (["--sparsities=0,50"], ["sparsities", "[1, 100)"]),
    (["--sparsities=50,100"], ["sparsities", "[1, 100)"]),
    (["--sparsities=0.5,0.9"], ["--sparsities has 0.5, which reads as a fraction", "in percent", "write 50"]),
    (["--sparsities=50,0.99"], ["0.99", "reads as a fraction", "write 99"]),
    (["--sparsities=half"], ["sparsities", "not a number"]),
    (["--marglik_frequency=0"], ["marglik_frequency", "positive"]),
    (["--criteria=opd,snap"], ["unknown pruning strategy", "post_only"]),
    (["--prior=diagonal"], ["invalid choice", "unit"]),
    (["--curvature=full"], ["invalid choice", "kfac"]),
    (["--structure=4:2"], ["N:M"]),
    (["--structure=rows"], ["structure", "neurons"]),
    (["--structure=filters"], ["found no layer", "convolution"]),
    (["--loss=softmax_mse"], ["no Laplace likelihood", "cross_entropy"]),
    (["--model_name=mnist_lenet5", "--structure=2:4"], ["conv1.weight has 25 inputs", "prune_layers_to_ignore"]),
])
def test_bad_spam_flags_are_one_clear_line(cli, flags, needles):
    code, _, err = cli("branch", "spam", *TINY, *flags)
    one_line_error(code, err, *needles)
    assert not any(cli.root.rglob("done.json"))  # nothing was trained


def test_branch_hashes_are_stable(cli):
    """Pinned: they name run dirs on users' disks (the sweep's sparsities and criteria are not hashed).
    All changed with the authors' defaults (DEFAULTS_VERSION 2: was 9e2fcb84... for the plain command),
    so no directory made under the old defaults is found under the new ones."""
    assert location(cli, "branch", "spam", *TINY).name == "branch_spam_37eca5bd44c755545464"
    assert location(cli, "branch", "spam", *TINY, "--prior=parameter", "--sparsities=10").name == \
        "branch_spam_37eca5bd44c755545464"
    # the layer-wise prior was the default before the parameter-wise one: now it is in the hash
    assert location(cli, "branch", "spam", *TINY, "--prior=layer").name == "branch_spam_9c899026e2853ca37041"
    assert location(cli, "branch", "spam-online", *TINY, "--prune_interval=1").name == \
        "branch_spam-online_" + FIXED_ONLINE_HASH


# changed with the authors' online defaults (OnlineSpamHparams, GGN by default, DEFAULTS_VERSION 2); was 98236eaa...
FIXED_ONLINE_HASH = "c08c9558e969473923bb"


def test_report_summarizes_every_cell_over_replicates(cli, capsys, tmp_path):
    import open_prune

    cells = []
    for replicate in (1, 2):
        argv = [*FAST, *SWEEP, f"--replicate={replicate}"]
        assert cli("branch", "spam", *argv)[0] == 0
        table = json.loads((location(cli, "branch", "spam", *argv) / "table.json").read_text())
        cells.append({(c["model"], c["criterion"], c["sparsity"]): c for c in table["cells"]})
    out = tmp_path / "report"
    code = open_prune.main(["report", "branch", "spam", *FAST, *SWEEP, "--replicates=1-2", f"--root={cli.root}",
                            f"--out={out}"])
    assert code == 0, capsys.readouterr().err
    text = (out / "report.md").read_text()
    values = [c[("map", "random", 50)]["nll"] for c in cells]
    mean, std = sum(values) / 2, abs(values[0] - values[1]) / 2 ** 0.5  # by hand, two replicates
    row = next(line for line in text.splitlines() if line.startswith("| map/random 50% |"))
    header = next(line for line in text.splitlines() if line.startswith("| | accuracy"))
    nll = [c.strip() for c in row.split("|")][header.split("|").index(" nll ")]
    assert nll.startswith(f"{mean:.4f} ± {std:.4f} [")
