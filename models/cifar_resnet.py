"""The CIFAR ResNet of He et al. (2016, section 4.2): 6n+2 layers in three stages.

Names: `cifar_resnet_D[_W]` (or the bare `resnet_D[_W]`), D = 6n + 2 >= 8 layers, W = width of
the first stage (default 16). A 3x3 conv stem of W filters, then three stages of n BasicBlocks
with W, 2W and 4W filters (stages 2 and 3 halve the resolution in their first block), global
average pooling and a linear layer. Where a block changes shape its shortcut is a 1x1 conv + BN
projection; elsewhere it is the identity. cifar_resnet_20 has 272,474 parameters for 10 classes.
"""

from __future__ import annotations

import re
from typing import NamedTuple, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from models import recipes
from models.base import InputShape, Model, ModelFamily

NAME = "cifar_resnet"
SUMMARY = "He et al.'s CIFAR ResNet: 6n+2 layers in three stages of basic blocks"

_MODEL_NAME = re.compile(r"(?:cifar_)?resnet_([1-9]\d*)(?:_([1-9]\d*))?")


def _conv3x3(c_in: int, c_out: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, kernel_size=3, stride=stride, padding=1, bias=False)


class BasicBlock(nn.Module):
    """relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x))."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = _conv3x3(c_in, c_out, stride)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = _conv3x3(c_out, c_out)
        self.bn2 = nn.BatchNorm2d(c_out)
        if stride == 1 and c_in == c_out:
            self.shortcut: nn.Module = nn.Identity()
        else:
            self.shortcut = nn.Sequential(
                nn.Conv2d(c_in, c_out, kernel_size=1, stride=stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class CifarResNet(Model):
    """Stem `conv`/`bn`, residual `blocks.0 ... blocks.3n-1`, output `fc`."""

    def __init__(self, blocks_per_stage: int, width: int, in_channels: int, num_classes: int) -> None:
        super().__init__()
        self.conv = _conv3x3(in_channels, width)
        self.bn = nn.BatchNorm2d(width)
        blocks, c_in = [], width
        for stage in range(3):
            c_out = width * 2 ** stage
            for index in range(blocks_per_stage):
                stride = 2 if stage > 0 and index == 0 else 1
                blocks.append(BasicBlock(c_in, c_out, stride))
                c_in = c_out
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(c_in, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.blocks(F.relu(self.bn(self.conv(x))))
        return self.fc(out.mean(dim=(2, 3)))


class CifarResNetSpec(NamedTuple):
    depth: int
    width: int


def parse(name: str) -> Optional[CifarResNetSpec]:
    match = _MODEL_NAME.fullmatch(name)
    if match is None:
        return None
    depth, width = int(match.group(1)), int(match.group(2) or 16)
    if depth < 8 or (depth - 2) % 6 != 0:
        return None
    return CifarResNetSpec(depth, width)


def build(spec: CifarResNetSpec, input_shape: InputShape, num_classes: int) -> CifarResNet:
    return CifarResNet((spec.depth - 2) // 6, spec.width, input_shape[0], num_classes)


def default_hparams(name: str, spec: CifarResNetSpec) -> dict:
    return recipes.cifar(name, ignore_output=False)


FAMILY = ModelFamily(
    pattern="[cifar_]resnet_D[_W] (D = 6n+2 >= 8 layers, W = first-stage width, default 16)",
    parse=parse, build=build, default_hparams=default_hparams)
