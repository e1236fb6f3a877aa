"""VGG for CIFAR: Simonyan & Zisserman's configurations A, B, D, E with batchnorm and one fc layer.

Names: `cifar_vgg_{11,13,16,19}`. Five stages of 3x3 conv (with bias) -> BN -> ReLU modules with
64, 128, 256, 512, 512 filters; a 2x2 max-pool after each of the first four stages; global average
pooling (on 32x32 inputs the last stage is 2x2, so this is the 2x2 average pool of the CIFAR
variant) and a single linear layer 512 -> classes.
"""

from __future__ import annotations

import re
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from models import recipes
from models.base import InputShape, Model, ModelFamily

NAME = "cifar_vgg"
SUMMARY = "VGG-11/13/16/19 for CIFAR: batchnorm convolutions, global pooling, one linear layer"

_STAGE_WIDTHS = (64, 128, 256, 512, 512)
_CONVS_PER_STAGE = {11: (1, 1, 2, 2, 2), 13: (2, 2, 2, 2, 2), 16: (2, 2, 3, 3, 3), 19: (2, 2, 4, 4, 4)}
_MODEL_NAME = re.compile(r"cifar_vgg_([1-9]\d*)")


class ConvBN(nn.Module):
    """relu(bn(conv(x))) with a 3x3, padding-1 convolution."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, kernel_size=3, padding=1)
        self.bn = nn.BatchNorm2d(c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)))


class CifarVGG(Model):
    """`layers` (ConvBN modules and max-pools in order), then the output `fc`."""

    def __init__(self, convs_per_stage: tuple[int, ...], in_channels: int, num_classes: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c_in = in_channels
        for stage, (width, count) in enumerate(zip(_STAGE_WIDTHS, convs_per_stage)):
            if stage > 0:
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            for _ in range(count):
                layers.append(ConvBN(c_in, width))
                c_in = width
        self.layers = nn.Sequential(*layers)
        self.fc = nn.Linear(c_in, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.layers(x).mean(dim=(2, 3)))


def parse(name: str) -> Optional[int]:
    match = _MODEL_NAME.fullmatch(name)
    if match is None or int(match.group(1)) not in _CONVS_PER_STAGE:
        return None
    return int(match.group(1))


def build(depth: int, input_shape: InputShape, num_classes: int) -> CifarVGG:
    return CifarVGG(_CONVS_PER_STAGE[depth], input_shape[0], num_classes)


def default_hparams(name: str, depth: int) -> dict:
    return recipes.cifar(name, ignore_output=True)


FAMILY = ModelFamily(pattern="cifar_vgg_{11,13,16,19}", parse=parse, build=build,
                     default_hparams=default_hparams)
