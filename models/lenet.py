"""LeNet: a fully connected ReLU network over the flattened image.

Names: `[<dataset>_]lenet[_N1_N2...]`, where N1, N2, ... are the hidden-layer widths (none at all
is multinomial logistic regression) and the optional dataset prefix (mnist, fashionmnist,
cifar10, cifar100, or cifar meaning cifar10) picks the default dataset; a bare `lenet_300_100`
defaults to Fashion-MNIST. The input width always comes from the dataset's image shape.
"""

from __future__ import annotations

import math
import re
from typing import NamedTuple, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from models import recipes
from models.base import InputShape, Model, ModelFamily

_DATASET_OF_PREFIX = {None: "fashionmnist", "mnist": "mnist", "fashionmnist": "fashionmnist",
                      "cifar10": "cifar10", "cifar100": "cifar100", "cifar": "cifar10"}
_NAME = re.compile(r"(?:(mnist|fashionmnist|cifar10|cifar100|cifar)_)?lenet((?:_[1-9]\d*)*)")


class LeNet(Model):
    """Linear layers `fc_layers.0`, `fc_layers.1`, ... with ReLU between, then the output `fc`."""

    def __init__(self, in_features: int, hidden: tuple[int, ...], num_classes: int) -> None:
        super().__init__()
        widths = (in_features, *hidden)
        self.fc_layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(widths, widths[1:]))
        self.fc = nn.Linear(widths[-1], num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.flatten(1)
        for layer in self.fc_layers:
            x = F.relu(layer(x))
        return self.fc(x)


class LeNetSpec(NamedTuple):
    dataset_name: str
    hidden: tuple[int, ...]


def parse(name: str) -> Optional[LeNetSpec]:
    match = _NAME.fullmatch(name)
    if match is None:
        return None
    hidden = tuple(int(width) for width in match.group(2).split("_")[1:])
    return LeNetSpec(_DATASET_OF_PREFIX[match.group(1)], hidden)


def build(spec: LeNetSpec, input_shape: InputShape, num_classes: int) -> LeNet:
    return LeNet(math.prod(input_shape), spec.hidden, num_classes)


def default_hparams(name: str, spec: LeNetSpec) -> dict:
    return recipes.lenet(name, spec.dataset_name)


FAMILY = ModelFamily(
    pattern="[mnist_|fashionmnist_|cifar10_|cifar100_|cifar_]lenet[_N1_N2...] (hidden widths)",
    parse=parse, build=build, default_hparams=default_hparams)
