"""The Wide ResNet family and the RigL paper's CIFAR-10 recipe: sizes against a hand count, the
block structure of the RigL code, names, the Glorot initializer, and the recipe reaching the
sparse branches end to end."""

from __future__ import annotations

import json
import math

import pytest
import torch

from models import initializers, recipes, registry, wide_resnet
from tests.conftest import TINY
from tests.models.test_families import CIFAR, MNIST, count, get


def wrn_count(depth: int, widen: int, classes: int, c_in: int = 3) -> int:
    """Parameters counted layer by layer: stem, blocks (two BNs, two 3x3 convs, a 1x1 projection
    where the channels change), the final BN and the linear layer."""
    n = (depth - 4) // 6
    total, channels = c_in * 16 * 9, 16
    for group in range(3):
        width = 16 * widen * 2 ** group
        for _ in range(n):
            total += 2 * channels + channels * width * 9 + 2 * width + width * width * 9
            total += channels * width if channels != width else 0
            channels = width
    return total + 2 * channels + channels * classes + classes


def test_wrn_22_2_has_the_hand_counted_size():
    assert wrn_count(22, 2, 10) == 1_079_642
    assert count(get("cifar_wrn_22_2")) == 1_079_642


@pytest.mark.parametrize("name, depth, widen, classes", [
    ("wrn_10_1", 10, 1, 10), ("cifar_wrn_16_4", 16, 4, 100), ("cifar_wrn_28_10_drop0", 28, 10, 10)])
def test_sizes_match_the_count(name, depth, widen, classes):
    assert count(get(name, CIFAR, classes)) == wrn_count(depth, widen, classes)


def test_blocks_project_only_where_the_channels_change_and_halve_resolution_in_groups_two_and_three():
    model = get("cifar_wrn_22_2").eval()
    projected = [i for i, block in enumerate(model.blocks) if block.shortcut is not None]
    assert projected == [0, 3, 6]  # 16 -> 32, 32 -> 64, 64 -> 128 channels
    sizes = []
    x = model.conv(torch.randn(1, 3, 32, 32))
    for block in model.blocks:
        x = block(x)
        sizes.append(tuple(x.shape[1:]))
    assert sizes[0] == (32, 32, 32) and sizes[3] == (64, 16, 16) and sizes[6] == (128, 8, 8)
    assert all(module.bias is None for module in model.modules() if isinstance(module, torch.nn.Conv2d))


def test_the_projection_reads_the_preactivated_input():
    block = wide_resnet.PreActBlock(4, 8, 2, dropout=0.0).eval()
    x = torch.randn(2, 4, 8, 8)
    h = torch.relu(block.bn1(x))
    residual = block.conv2(torch.relu(block.bn2(block.conv1(h))))
    torch.testing.assert_close(block(x), residual + block.shortcut(h))


def test_dropout_is_the_rigl_codes_unless_named():
    assert get("cifar_wrn_22_2").blocks[0].dropout.p == 0.3
    assert get("cifar_wrn_22_2_drop0").blocks[0].dropout.p == 0.0
    assert get("wrn_10_1_drop10", MNIST).blocks[0].dropout.p == 0.1


@pytest.mark.parametrize("name", ["cifar_wrn_20_2", "wrn_4_2", "wrn_22_0", "wrn_22_2_drop100"])
def test_invalid_names_are_not_this_family(name):
    assert wide_resnet.parse(name) is None


def test_glorot_uniform_bounds_and_variance():
    weight = torch.empty(64, 32, 3, 3)
    torch.manual_seed(0)
    initializers.glorot_uniform(weight)
    bound = math.sqrt(6 / (32 * 9 + 64 * 9))
    assert weight.abs().max() <= bound
    assert weight.var().item() == pytest.approx(bound ** 2 / 3, rel=0.05)


def test_the_recipe_is_the_rigl_codes_cifar_setting():
    recipe = recipes.rigl_cifar("cifar_wrn_22_2")
    assert registry.default_hparams("cifar_wrn_22_2") == recipe
    training = recipe["training"]
    assert training["training_steps"] == "97656it" and training["milestone_steps"] == "30000it,60000it,90000it"
    assert training["gamma"] == 0.2 and training["nesterov"] and training["weight_decay"] == 5e-4
    assert recipe["rigl"]["update_end"] * 97656 == pytest.approx(75000)
    assert recipe["gmp"] == {"begin_step": "20000it", "end_step": "75000it", "prune_every": "1000it"}


def test_the_recipe_reaches_the_rigl_branch(cli):
    """The recipe's rigl bundle is what the branch runs with, unless a flag says otherwise."""
    flags = [*[f for f in TINY if not f.startswith(("--model_name", "--training_steps"))],
             "--default_hparams=cifar_wrn_22_2", "--model_name=wrn_10_1", "--dataset_name=mnist",
             "--training_steps=4it", "--milestone_steps=2it", "--train_density=0.5", "--update_every=2it"]
    code, _, err = cli("branch", "rigl", *flags)
    assert code == 0, err
    directory = next(cli.root.rglob("branch_rigl_*"))
    hparams = json.loads((directory / "hparams.json").read_text())["hparams"]
    assert hparams["rigl"]["update_every"] == "2it"  # the flag wins
    assert hparams["rigl"]["update_end"] == pytest.approx(75000 / 97656)  # the recipe fills the rest
    assert hparams["model"]["model_init"] == "glorot_uniform" and hparams["training"]["nesterov"] is True
