"""The branches end to end on a tiny ViT (the tiny MNIST of tests/conftest.py): train, oneshot
(magnitude, SNIP, SynFlow), iterative and RigL run, and pruned weights stay exactly zero."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

VIT = ["--dataset_name=mnist", "--batch_size=64", "--model_name=mnist_vit_1_16_p7", "--model_init=pytorch",
       "--optimizer_name=adamw", "--lr=1e-3", "--weight_decay=0.05", "--lr_schedule=cosine", "--warmup_steps=1ep",
       "--training_steps=2ep", "--label_smoothing=0.1", "--quiet"]


def location(cli, *argv) -> Path:
    code, out, err = cli(*argv, "--display_output_location")
    assert code == 0, err
    return Path(out.strip())


def load(path: Path) -> dict:
    return torch.load(path, weights_only=True)


def assert_zero_where_pruned(mask: dict, weights: dict) -> None:
    assert mask
    for name, kept in mask.items():
        assert weights[name].shape == kept.shape
        assert (weights[name][~kept] == 0).all(), name


def test_train(cli):
    code, out, err = cli("train", *VIT)
    assert code == 0, err
    path = location(cli, "train", *VIT)
    assert (path / "done.json").exists() and (path / "model_ep2_it0.pt").exists()
    assert "test_accuracy" in (path / "metrics.jsonl").read_text()


@pytest.mark.parametrize("strategy", ["magnitude", "snip2", "synflow"])
def test_oneshot(cli, strategy):
    flags = ["branch", "oneshot", *VIT, f"--strategy={strategy}", "--prune_fraction=0.7"]
    code, out, err = cli(*flags)
    assert code == 0, err
    path = location(cli, *flags)
    mask = load(path / "mask.pt")
    assert "blocks.0.attn.qkv.weight" in mask and "pos_embed" not in mask and "blocks.0.norm1.weight" not in mask
    report = json.loads((path / "sparsity.json").read_text())
    assert report["unpruned"] == round(0.3 * report["total"])
    assert_zero_where_pruned(mask, load(path / "model_ep2_it0.pt"))


def test_iterative(cli):
    flags = ["branch", "iterative", *VIT, "--levels=2"]
    code, out, err = cli(*flags)
    assert code == 0, err
    path = location(cli, *flags)
    for level in (1, 2):
        mask = load(path / f"level_{level}" / "mask.pt")
        assert_zero_where_pruned(mask, load(path / f"level_{level}" / "model_ep2_it0.pt"))
    level2 = json.loads((path / "level_2" / "sparsity.json").read_text())
    assert level2["unpruned"] == pytest.approx(0.64 * level2["total"], abs=2)


def test_rigl(cli):
    flags = ["branch", "rigl", *VIT, "--train_density=0.3", "--update_every=2it"]
    code, out, err = cli(*flags)
    assert code == 0, err
    directory = next(cli.root.rglob("branch_rigl_*"))
    mask = load(directory / "mask.pt")
    assert_zero_where_pruned(mask, load(directory / "training" / "model_ep2_it0.pt"))
    # the first layer, a conv (the patch embedding), stays dense as in the RigL code's conv nets
    assert mask["patch_embed.weight"].all()
    rest = [kept for name, kept in mask.items() if name != "patch_embed.weight"]
    assert sum(int(kept.sum()) for kept in rest) / sum(kept.numel() for kept in rest) == pytest.approx(0.3, abs=0.01)
