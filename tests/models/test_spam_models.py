"""The SpaM paper's models: LeNet-5, the MLPs and CancerNet; parameter counts by hand, recipes."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

import models.registry as registry


def get(name: str, shape: tuple[int, ...], classes: int):
    h = SimpleNamespace(model_name=name, model_init="kaiming_normal", batchnorm_init="uniform",
                        batchnorm_frozen=False, output_frozen=False)
    return registry.get(h, shape, classes, seed=0)


@pytest.mark.parametrize("name, shape, classes, expected", [
    # conv1 6x1x5x5+6, conv2 16x6x3x3+16, fc 400x120+120, 120x84+84, 84x10+10
    ("fashionmnist_lenet5", (1, 28, 28), 10, 156 + 880 + 48120 + 10164 + 850),
    # 32x32 inputs: conv2 is 5x5 (as the authors), and the map is 16x5x5 again
    ("cifar_lenet5", (3, 32, 32), 10, 456 + 2416 + 48120 + 10164 + 850),
    ("fashionmnist_mlp_256", (1, 28, 28), 10, 784 * 256 + 256 + 256 * 10 + 10),
    ("breastcancer_mlp_100", (30,), 2, 30 * 100 + 100 + 100 * 2 + 2),
    ("breastcancer_cancernet", (30,), 2, 30 * 100 + 100 + 100 * 100 + 100 + 100 * 2 + 2),
])
def test_parameter_counts(name, shape, classes, expected):
    model = get(name, shape, classes)
    assert sum(p.numel() for p in model.parameters()) == expected
    assert model(torch.zeros(2, *shape)).shape == (2, classes)
    assert sum(family.parse(name) is not None for family in registry.families()) == 1


def test_lenet5_has_the_conv_and_fc_layers_pruning_sees():
    model = get("mnist_lenet5", (1, 28, 28), 10)
    assert model.prunable_layer_names == ["conv1.weight", "conv2.weight", "fc_layers.0.weight",
                                          "fc_layers.1.weight", "fc.weight"]


def test_recipes():
    lenet5 = registry.default_hparams("fashionmnist_lenet5")
    assert lenet5["dataset"] == {"dataset_name": "fashionmnist", "batch_size": 128, "input_normalization": "unit"}
    assert lenet5["training"] == {"optimizer_name": "sgd", "lr": 0.1, "momentum": 0.9, "training_steps": "100ep",
                                  "lr_schedule": "cosine", "final_lr": 1e-6, "weight_decay": 1 / 60000}
    assert lenet5["spam"] == {"marglik_frequency": 5}
    mlp = registry.default_hparams("fashionmnist_mlp_256")
    assert mlp["training"] == {"optimizer_name": "adam", "lr": 1e-3, "training_steps": "50ep",
                               "weight_decay": 1 / 60000}
    assert mlp["dataset"]["batch_size"] == 64 and mlp["spam"] == {"marglik_frequency": 1}
    cancer = registry.default_hparams("breastcancer_cancernet")
    assert cancer["dataset"]["dataset_name"] == "breastcancer"
    assert cancer["training"]["weight_decay"] == 1 / 456  # 569 rows, 20% of each class held out for testing


@pytest.mark.parametrize("name", ["svhn_lenet5", "lenet5", "mnist_lenet5_1", "mnist_mlp", "mnist_mlp_0", "cancernet"])
def test_invalid_names(name):
    assert not registry.exists(name)
