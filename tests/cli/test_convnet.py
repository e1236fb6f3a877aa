"""The branches on a convolutional network with batchnorm and on-device augmentation (CIFAR-10
format files written by the test, a tiny CIFAR ResNet): the same invariants as for LeNet."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import open_prune
from tests.datasets.test_loaders import write_cifar

CONV = ["--dataset_name=cifar10", "--batch_size=32", "--model_name=cifar_resnet_8_4", "--optimizer_name=sgd",
        "--lr=0.05", "--momentum=0.9", "--weight_decay=1e-4", "--training_steps=2ep", "--quiet", "--device=cpu"]


@pytest.fixture(scope="module")
def cifar_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("cifar")
    write_cifar(root, "cifar10", n_per_file=16)  # 80 training images: 3 steps per epoch
    return root


def run(capsys, root, cifar_root, *argv) -> Path:
    flags = [*argv, *CONV, f"--root={root}", f"--dataset_root={cifar_root}"]
    code = open_prune.main(flags)
    _, err = capsys.readouterr()
    assert code == 0, err
    open_prune.main([*flags, "--display_output_location"])
    return Path(capsys.readouterr()[0].strip())


def test_iterative_on_a_resnet_prunes_every_conv_and_keeps_pruned_weights_at_zero(tmp_path, cifar_root, capsys):
    path = run(capsys, tmp_path, cifar_root, "branch", "iterative", "--levels=2")
    layers = json.loads((path / "level_2" / "sparsity.json").read_text())
    total = json.loads((path / "level_0" / "sparsity.json").read_text())["total"]
    assert layers["unpruned"] == pytest.approx(0.64 * total, abs=2)  # the ResNet recipe ignores no layer
    mask = torch.load(path / "level_2" / "mask.pt", weights_only=True)
    final = torch.load(path / "level_2" / "model_ep2_it0.pt", weights_only=True)
    assert sum(kept.dim() == 4 for kept in mask.values()) >= 7  # stem, 6 block convs, shortcuts
    for name, kept in mask.items():
        assert (final[name][~kept] == 0).all(), name
        assert final[name].shape == kept.shape


@pytest.mark.parametrize("strategy", ["snip2", "grasp2", "synflow"])
def test_oneshot_scores_on_a_resnet(tmp_path, cifar_root, capsys, strategy):
    path = run(capsys, tmp_path, cifar_root, "branch", "oneshot", f"--strategy={strategy}", "--prune_fraction=0.8",
               "--prune_iterations=2")
    report = json.loads((path / "sparsity.json").read_text())
    assert report["unpruned"] == round(0.2 * report["total"])
    trunk_init = torch.load(next(tmp_path.rglob("main/model_ep0_it0.pt")), weights_only=True)
    start = torch.load(path / "model_ep0_it0.pt", weights_only=True)
    mask = torch.load(path / "mask.pt", weights_only=True)
    # batchnorm running statistics and biases come from the trunk's init, untouched by scoring
    bn = [k for k in trunk_init if k.endswith("running_var")]
    assert bn and all(torch.equal(start[k], trunk_init[k]) for k in bn)
    assert all(torch.equal(start[n], trunk_init[n] * mask[n]) for n in mask)
