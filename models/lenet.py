"""LeNet: a fully connected network over the flattened input (an image or a table's row).

Names: `[<dataset>_]lenet[_N1_N2...]` with ReLU units, or `<dataset>_<activation>_N1_N2...` with
activation `sigmoid` or `tanh` (e.g. `fashionmnist_sigmoid_50_30`, `iris_sigmoid_6`), where N1,
N2, ... are the hidden-layer widths (none at all is multinomial logistic regression) and the
dataset prefix (mnist, fashionmnist, cifar10, cifar100 or cifar meaning cifar10, or a table:
xor, sine, iris, wine, breastcancer) picks the default dataset and recipe. A bare `lenet_300_100`
is a valid --model_name (its dataset is --dataset_name's) but has no recipe: --default_hparams
refuses it, naming the prefixed choices, rather than guess a dataset. The input width always comes
from the dataset. The output layer `fc`
is linear: a loss such as softmax_mse or sigmoid_mse adds an output nonlinearity.
"""

from __future__ import annotations

import math
import re
from typing import NamedTuple, Optional

import torch
import torch.nn as nn

from foundations.errors import UserError
from models import recipes
from models.base import InputShape, Model, ModelFamily

NAME = "lenet"
SUMMARY = "fully connected networks (ReLU, sigmoid or tanh) over the flattened input"

_DATASET_OF_PREFIX = {"mnist": "mnist", "fashionmnist": "fashionmnist",
                      "cifar10": "cifar10", "cifar100": "cifar100", "cifar": "cifar10", "xor": "xor", "sine": "sine",
                      "iris": "iris", "wine": "wine", "breastcancer": "breastcancer"}
_PREFIXES = "|".join(sorted((p for p in _DATASET_OF_PREFIX if p), key=len, reverse=True))
_MODEL_NAME = re.compile(rf"(?:({_PREFIXES})_)?(lenet|sigmoid|tanh)((?:_[1-9]\d*)*)")
ACTIVATIONS = {"lenet": nn.ReLU, "sigmoid": nn.Sigmoid, "tanh": nn.Tanh}


class LeNet(Model):
    """Linear layers `fc_layers.0`, `fc_layers.1`, ... with the activation between, then the output `fc`."""

    def __init__(self, in_features: int, hidden: tuple[int, ...], num_classes: int,
                 activation: type[nn.Module] = nn.ReLU) -> None:
        super().__init__()
        widths = (in_features, *hidden)
        self.fc_layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(widths, widths[1:]))
        self.fc = nn.Linear(widths[-1], num_classes)
        self.activation = activation()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.flatten(1)
        for layer in self.fc_layers:
            x = self.activation(layer(x))
        return self.fc(x)

    def forward_stacked(self, params: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        """The forward of N networks at once (training/stacked/): `params` name -> (N, ...),
        `x` (N, B, ...) -> (N, B, classes), each layer one batched matrix product. Activations
        are kept features-first, (N, features, B), so each layer is W @ a: the weights'
        gradients then come out contiguous, as the optimizer's passes over them want (W's
        transpose in a @ W^T would make every weight gradient a transposed view)."""
        a = x.flatten(2).transpose(1, 2)
        for i in range(len(self.fc_layers)):
            a = self.activation(_stacked_linear(params, f"fc_layers.{i}", a))
        return _stacked_linear(params, "fc", a).transpose(1, 2)


def _stacked_linear(params: dict[str, torch.Tensor], name: str, a: torch.Tensor) -> torch.Tensor:
    """W @ a (+ b) for features-first activations a (N, in, B) -> (N, out, B)."""
    weight, bias = params[f"{name}.weight"], params.get(f"{name}.bias")
    if bias is None:
        return torch.bmm(weight, a)
    return torch.baddbmm(bias.unsqueeze(2), weight, a)


class LeNetSpec(NamedTuple):
    dataset_name: Optional[str]  # None for a bare name: the dataset is --dataset_name's
    hidden: tuple[int, ...]
    activation: str = "lenet"  # lenet (ReLU) | sigmoid | tanh


def parse(name: str) -> Optional[LeNetSpec]:
    match = _MODEL_NAME.fullmatch(name)
    if match is None or (match.group(2) != "lenet" and match.group(1) is None):
        return None  # a sigmoid/tanh net names its dataset: fashionmnist_sigmoid_50_30
    hidden = tuple(int(width) for width in match.group(3).split("_")[1:])
    return LeNetSpec(_DATASET_OF_PREFIX.get(match.group(1)), hidden, match.group(2))


def build(spec: LeNetSpec, input_shape: InputShape, num_classes: int) -> LeNet:
    return LeNet(math.prod(input_shape), spec.hidden, num_classes, ACTIVATIONS[spec.activation])


def default_hparams(name: str, spec: LeNetSpec) -> dict:
    if spec.dataset_name is None:
        raise UserError(f"--default_hparams={name} names no dataset, so it has no recipe: write it with the "
                        f"dataset, e.g. fashionmnist_{name} or mnist_{name} (prefixes: "
                        f"{', '.join(p for p in _DATASET_OF_PREFIX if p != 'cifar')})")
    if spec.activation == "lenet":
        return recipes.lenet(name, spec.dataset_name)
    return recipes.saturating_mlp(name, spec.dataset_name)


FAMILY = ModelFamily(
    pattern="[<dataset>_]lenet[_N1_N2...] (ReLU; hidden widths), <dataset>_sigmoid|tanh_N1_N2...",
    parse=parse, build=build, default_hparams=default_hparams)
