"""`branch oneshot --strategy=wanda|sparsegpt`: end to end on a tiny GPT and a tiny MLP, before and
after a fine-tune, N:M, OWL, and the refusals."""

from __future__ import annotations

import json

import pytest
import torch

import open_prune
from pruning.mask import Mask
from tests.tiny_data import write_tiny_mnist

TEXT = "".join(f"{i}: the quick brown fox jumps over the lazy dog.\n%\n" for i in range(400))
GPT = ["--default_hparams=fortunes_gpt_1_16_h2_c16", "--batch_size=8", "--training_steps=12it",
       "--warmup_steps=2it", "--context_length=16", "--quiet"]
MLP = ["--default_hparams=mnist_lenet_300_100", "--training_steps=6it", "--batch_size=32", "--quiet",
       "--num_threads=1"]


@pytest.fixture
def corpus_root(tmp_path):
    (tmp_path / "fortunes").mkdir()
    (tmp_path / "fortunes" / "a").write_text(TEXT)
    return tmp_path


def run_cli(root, *argv):
    return open_prune.main([*argv, f"--root={root / 'runs'}", f"--dataset_root={root}", "--device=cpu"])


def branch_dir(root, capsys, *argv):
    capsys.readouterr()
    assert run_cli(root, "branch", "oneshot", *argv, "--display_output_location") == 0
    return __import__("pathlib").Path(capsys.readouterr().out.strip().splitlines()[-1])


@pytest.mark.parametrize("strategy", ["wanda", "sparsegpt"])
def test_gpt_pruned_and_evaluated_without_training(corpus_root, capsys, strategy):
    flags = [*GPT, f"--strategy={strategy}", "--prune_fraction=0.5", "--prune_scope=layerwise",
             "--calibration_examples=8", "--finetune_steps=0"]
    flags += ["--sparsegpt_blocksize=16"] if strategy == "sparsegpt" else []
    assert run_cli(corpus_root, "branch", "oneshot", *flags) == 0
    out = capsys.readouterr().out
    assert "pruned, before fine-tune (perplexity" in out and "after fine-tune" not in out
    where = branch_dir(corpus_root, capsys, *flags)
    done = json.loads((where / "done.json").read_text())
    assert done["final_iteration"] == 0
    assert done["metrics"]["pruned_test_perplexity"] == pytest.approx(done["metrics"]["test_perplexity"], rel=1e-6)
    mask = Mask.load(where)
    assert bool(mask["fc.weight"].all())  # the papers keep the output layer
    for name, alive in mask.items():  # every other layer half (wanda: every row, sparsegpt: in all)
        if name == "fc.weight":
            continue
        rows = alive.flatten(1)
        assert int(rows.sum()) == rows.numel() // 2, name
        if strategy == "wanda":
            assert rows.sum(1).tolist() == [rows.shape[1] // 2] * rows.shape[0], name
    marker = json.loads((where / "branch_done.json").read_text())
    assert marker["results"][0][0] == "pruned, before fine-tune"
    if strategy == "sparsegpt":
        state = torch.load(where / "sparsegpt_weights.pth")
        for name, alive in mask.items():
            assert torch.all(state[name][~alive] == 0)
    kept = [path for path in where.iterdir() if path.name not in ("branch_done.json", ".lock")]
    written = {path.name: path.stat().st_mtime_ns for path in kept}
    assert run_cli(corpus_root, "branch", "oneshot", *flags) == 0  # finished: nothing recomputed or rewritten
    assert {path.name: path.stat().st_mtime_ns for path in kept} == written


def test_mlp_two_four_with_a_short_fine_tune(tmp_path, capsys):
    write_tiny_mnist(tmp_path)
    flags = [*MLP, "--strategy=sparsegpt", "--structure=2:4", "--calibration_examples=32",
             "--finetune_steps=2it", "--sparsegpt_blocksize=4"]
    assert run_cli(tmp_path, "branch", "oneshot", *flags) == 0
    out = capsys.readouterr().out
    assert "pruned, before fine-tune" in out and "after fine-tune" in out
    where = branch_dir(tmp_path, capsys, *flags)
    done = json.loads((where / "done.json").read_text())
    assert done["final_iteration"] == 2 and "pruned_test_accuracy" in done["metrics"]
    results = dict(json.loads((where / "branch_done.json").read_text())["results"])
    assert results["pruned, before fine-tune"]["test_accuracy"] == done["metrics"]["pruned_test_accuracy"]
    assert results["after fine-tune"]["test_accuracy"] == done["metrics"]["test_accuracy"]
    mask = Mask.load(where)
    assert bool(mask["fc.weight"].all())
    for name in ("fc_layers.0.weight", "fc_layers.1.weight"):
        assert torch.all(mask[name].flatten(1).reshape(-1, 4).sum(1) == 2), name


def test_mlp_wanda_with_owl_and_magnitude_two_four(tmp_path, capsys):
    write_tiny_mnist(tmp_path)
    assert run_cli(tmp_path, "branch", "oneshot", *MLP, "--strategy=wanda", "--prune_fraction=0.5",
                   "--prune_scope=owl", "--calibration_examples=32", "--finetune_steps=0") == 0
    assert run_cli(tmp_path, "branch", "oneshot", *MLP, "--strategy=sparsegpt", "--prune_fraction=0.8",
                   "--prune_scope=erk", "--calibration_examples=32", "--finetune_steps=0") == 0
    assert run_cli(tmp_path, "branch", "oneshot", *MLP, "--strategy=magnitude", "--structure=2:4",
                   "--finetune_steps=0") == 0


def test_convolutions_and_a_vit_with_owl(tmp_path, capsys):
    write_tiny_mnist(tmp_path)
    common = ["--training_steps=4it", "--batch_size=32", "--quiet", "--num_threads=1", "--prune_fraction=0.5",
              "--prune_scope=owl", "--calibration_examples=16", "--finetune_steps=0"]
    for model, ignore in (("mnist_lenet5", "fc.weight"), ("mnist_vit_1_16_p7_h2", "patch_embed.weight")):
        extra = ["--warmup_steps=0it"] if "vit" in model else []
        for strategy in ("wanda", "sparsegpt"):
            blocks = ["--sparsegpt_blocksize=8"] if strategy == "sparsegpt" else []
            flags = [f"--default_hparams={model}", *common, *extra, f"--strategy={strategy}",
                     f"--prune_layers_to_ignore={ignore}", *blocks]
            assert run_cli(tmp_path, "branch", "oneshot", *flags) == 0
            where = branch_dir(tmp_path, capsys, *flags)
            mask = Mask.load(where)
            pruned = [name for name in mask.keys() if name != ignore]
            assert sum(int(mask[n].sum()) for n in pruned) == pytest.approx(
                sum(mask[n].numel() for n in pruned) / 2, abs=len(pruned))  # OWL keeps the overall target
            assert bool(mask[ignore].all())


@pytest.mark.parametrize("flags, message", [
    (["--strategy=wanda", "--prune_fraction=0.5"], "prune_scope=layerwise"),
    (["--strategy=sparsegpt", "--prune_fraction=0.5", "--prune_scope=layerwise", "--reinitialize"], "reinitialize"),
    (["--strategy=wanda", "--structure=2:4", "--prune_fraction=0.3"], "contradicts"),
    (["--strategy=wanda", "--prune_fraction=0.5", "--prune_scope=layerwise", "--prune_iterations=2"], "one pass"),
    (["--strategy=magnitude", "--prune_fraction=0.5", "--calibration_examples=8"], "calibration_examples"),
    (["--strategy=wanda", "--prune_fraction=0.5", "--prune_scope=layerwise", "--owl_lambda=0.1"], "owl"),
    (["--strategy=sparsegpt", "--prune_scope=owl", "--structure=2:4"], "leave --prune_scope out"),
])
def test_refusals_are_one_line(tmp_path, capsys, flags, message):
    write_tiny_mnist(tmp_path)
    assert run_cli(tmp_path, "branch", "oneshot", *MLP, *flags) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err, err
