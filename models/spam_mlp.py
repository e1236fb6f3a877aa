"""The fully connected ReLU networks of the SpaM paper (Dhahri et al., 2024), with their recipe.

Names: `<dataset>_mlp_N1[_N2...]` (hidden widths; e.g. `fashionmnist_mlp_256` is the 784-256-10
MLP, `breastcancer_mlp_100` the 30-100-2 net) and `breastcancer_cancernet`, the authors'
CancerNet as their code builds it: 30-100-100-2. The network is models.lenet.LeNet (layers
`fc_layers.<i>`, output `fc`); only the recipe differs from the lottery-ticket LeNets.

Recipe (the authors' MNIST_FC and CancerNet configurations): Adam at 1e-3, constant, batch 64,
50 epochs, weight decay 1/N for N training examples (their MAP prior of precision 1 on the summed
loss), and SpaM's marginal likelihood every epoch; PyTorch's default initialization (their models
draw nothing of their own) and their inputs: images as ToTensor() leaves them, in [0, 1] (`unit`),
the breast cancer table unstandardized (`raw`). Iris, wine and CIFAR-100, which their code does
not have, keep standardized inputs. `--input_normalization=dataset --model_init=kaiming_normal`
is the clean variant (docs/spam.md).
"""

from __future__ import annotations

import math
import re
from typing import NamedTuple, Optional

import datasets.registry as datasets_registry
from models.base import InputShape, ModelFamily
from models.lenet import LeNet

NAME = "spam_mlp"
SUMMARY = "the SpaM paper's fully connected ReLU networks, with its Adam recipe"

_DATASETS = ("mnist", "fashionmnist", "cifar10", "cifar100", "iris", "wine", "breastcancer")
_MODEL_NAME = re.compile(rf"({'|'.join(sorted(_DATASETS, key=len, reverse=True))})_mlp((?:_[1-9]\d*)+)")
CANCERNET = "breastcancer_cancernet"
AUTHORS_INPUTS = {"mnist": "unit", "fashionmnist": "unit", "cifar10": "unit", "breastcancer": "raw"}


class MlpSpec(NamedTuple):
    dataset_name: str
    hidden: tuple[int, ...]


def parse(name: str) -> Optional[MlpSpec]:
    if name == CANCERNET:
        return MlpSpec("breastcancer", (100, 100))
    match = _MODEL_NAME.fullmatch(name)
    if match is None:
        return None
    return MlpSpec(match.group(1), tuple(int(width) for width in match.group(2).split("_")[1:]))


def build(spec: MlpSpec, input_shape: InputShape, num_classes: int) -> LeNet:
    return LeNet(math.prod(input_shape), spec.hidden, num_classes)


def default_hparams(name: str, spec: MlpSpec) -> dict:
    n_train = datasets_registry.info(spec.dataset_name).num_train
    dataset = {"dataset_name": spec.dataset_name, "batch_size": 64}
    if spec.dataset_name in AUTHORS_INPUTS:
        dataset["input_normalization"] = AUTHORS_INPUTS[spec.dataset_name]
    return {
        "dataset": dataset,
        "model": {"model_name": name, "model_init": "pytorch", "batchnorm_init": "uniform"},
        "training": {"optimizer_name": "adam", "lr": 1e-3, "training_steps": "50ep", "weight_decay": 1.0 / n_train},
        "spam": {"marglik_frequency": 1},
    }


FAMILY = ModelFamily(pattern="<dataset>_mlp_N1[_N2...] (ReLU MLP, SpaM's Adam recipe), breastcancer_cancernet",
                     parse=parse, build=build, default_hparams=default_hparams)
