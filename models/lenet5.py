"""LeNet-5, the convolutional LeNet of the SpaM paper (Dhahri et al., 2024).

Names: `<dataset>_lenet5` with dataset mnist, fashionmnist, cifar10 (or cifar) or cifar100 (not to
be confused with `cifar_lenet_5`, the fully connected LeNet with one hidden layer of 5 units).

    conv1 5x5, 6 filters -> ReLU -> 2x2 max-pool -> conv2 kxk, 16 filters -> ReLU -> 2x2 max-pool
    -> flatten -> fc_layers.0 (120) -> ReLU -> fc_layers.1 (84) -> ReLU -> fc (classes)

with k = 3 on 28x28 inputs and 5 otherwise, as in the authors' code, so both image sizes reach a
16 x 5 x 5 map. Their third layer is a 5x5 convolution to 120 channels on that map, which is the
same function and the same parameters as fc_layers.0 on the flattened map.

Recipe (the authors' LeNet configuration): SGD at 0.1 with momentum 0.9 (their SGD always has
it), cosine decay to 1e-6 over 100 epochs, batch 128, weight decay 1/N for N training examples
(their MAP: a prior of precision 1 on the loss summed over the data, i.e. 1/N on the mean loss),
and SpaM's marginal likelihood every 5 epochs; PyTorch's default initialization (their LeNet draws
nothing of its own) and, on MNIST and Fashion-MNIST, pixels in [0, 1] without normalization
(`unit`: their loaders apply ToTensor() alone; their CIFAR-10 LeNet is normalized and augmented,
as ours). `--input_normalization=dataset --model_init=kaiming_normal` is the clean variant.
"""

from __future__ import annotations

import re
from typing import NamedTuple, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

import datasets.registry as datasets_registry
from models.base import InputShape, Model, ModelFamily

NAME = "lenet5"
SUMMARY = "LeNet-5 of the SpaM paper: two convolutions, then fully connected 120-84"

_DATASETS = {"mnist": "mnist", "fashionmnist": "fashionmnist", "cifar10": "cifar10", "cifar": "cifar10",
             "cifar100": "cifar100"}
UNIT_INPUTS = ("mnist", "fashionmnist")  # ToTensor() alone in the authors' loaders; their CIFAR-10 is normalized
_MODEL_NAME = re.compile(rf"({'|'.join(sorted(_DATASETS, key=len, reverse=True))})_lenet5")


class LeNet5(Model):
    """conv1, conv2, fc_layers.0, fc_layers.1 and the output fc (see the module docstring)."""

    def __init__(self, in_channels: int, image_size: int, num_classes: int) -> None:
        super().__init__()
        kernel = 3 if image_size == 28 else 5
        side = ((image_size - 4) // 2 - kernel + 1) // 2
        if side < 1:
            raise ValueError(f"LeNet-5 needs images of at least 14 pixels a side, got {image_size}")
        self.conv1 = nn.Conv2d(in_channels, 6, 5)
        self.conv2 = nn.Conv2d(6, 16, kernel)
        self.fc_layers = nn.ModuleList([nn.Linear(16 * side * side, 120), nn.Linear(120, 84)])
        self.fc = nn.Linear(84, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2).flatten(1)
        for layer in self.fc_layers:
            x = F.relu(layer(x))
        return self.fc(x)


class LeNet5Spec(NamedTuple):
    dataset_name: str


def parse(name: str) -> Optional[LeNet5Spec]:
    match = _MODEL_NAME.fullmatch(name)
    return LeNet5Spec(_DATASETS[match.group(1)]) if match else None


def build(spec: LeNet5Spec, input_shape: InputShape, num_classes: int) -> LeNet5:
    if len(input_shape) != 3:
        raise ValueError(f"LeNet-5 takes images (C, H, W), got inputs of shape {input_shape}")
    return LeNet5(input_shape[0], input_shape[-1], num_classes)


def default_hparams(name: str, spec: LeNet5Spec) -> dict:
    n_train = datasets_registry.info(spec.dataset_name).num_train
    dataset = {"dataset_name": spec.dataset_name, "batch_size": 128}
    if spec.dataset_name in UNIT_INPUTS:
        dataset["input_normalization"] = "unit"
    return {
        "dataset": dataset,
        "model": {"model_name": name, "model_init": "pytorch", "batchnorm_init": "uniform"},
        "training": {"optimizer_name": "sgd", "lr": 0.1, "momentum": 0.9, "training_steps": "100ep",
                     "lr_schedule": "cosine", "final_lr": 1e-6, "weight_decay": 1.0 / n_train},
        "spam": {"marglik_frequency": 5},
    }


FAMILY = ModelFamily(pattern="<dataset>_lenet5 (LeNet-5: two convs, fc 120-84; SpaM's recipe)",
                     parse=parse, build=build, default_hparams=default_hparams)
