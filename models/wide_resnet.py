"""The Wide ResNet of Zagoruyko & Komodakis (2016) as the RigL paper trained it on CIFAR-10.

Names: `cifar_wrn_D_K[_dropP]` (or `wrn_D_K[_dropP]`), D = 6n + 4 >= 10 layers, K = widening
factor, P = dropout percent between a block's two convolutions (default 30, the RigL code's
WideResNetModel; `_drop0` turns it off). A 3x3 conv stem of 16 filters, three groups of n
pre-activation blocks with 16K, 32K and 64K filters (groups 2 and 3 halve the resolution in
their first block), then BN, ReLU, global average pooling and a linear layer. A block is

    h = relu(bn1(x));  out = conv2(dropout(relu(bn2(conv1(h))))) + shortcut

where the shortcut is x itself when the block keeps its channel count and a 1x1 convolution of h
(the pre-activated input) when it changes it, as in the RigL code (rigl/cifar_resnet). No conv has
a bias. cifar_wrn_22_2 is the RigL paper's CIFAR-10 network (1,079,642 parameters for 10 classes).
"""

from __future__ import annotations

import re
from typing import NamedTuple, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from models import recipes
from models.base import InputShape, Model, ModelFamily

NAME = "wide_resnet"
SUMMARY = "Wide ResNet (pre-activation, 6n+4 layers, widening K): the RigL paper's CIFAR-10 network"

_MODEL_NAME = re.compile(r"(?:cifar_)?wrn_([1-9]\d*)_([1-9]\d*)(?:_drop(\d+))?")
DEFAULT_DROPOUT_PERCENT = 30


def _conv3x3(c_in: int, c_out: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, kernel_size=3, stride=stride, padding=1, bias=False)


class PreActBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int, dropout: float) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(c_in)
        self.conv1 = _conv3x3(c_in, c_out, stride)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = _conv3x3(c_out, c_out)
        # The RigL code projects only where the channel count changes (a stride alone never occurs here).
        self.shortcut = (nn.Conv2d(c_in, c_out, kernel_size=1, stride=stride, bias=False)
                         if c_in != c_out else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.bn1(x))
        out = self.conv2(self.dropout(F.relu(self.bn2(self.conv1(h)))))
        return out + (x if self.shortcut is None else self.shortcut(h))


class WideResNet(Model):
    """Stem `conv`, blocks `blocks.0 ... blocks.3n-1`, final `bn`, output `fc`."""

    def __init__(self, blocks_per_group: int, widen: int, dropout: float, in_channels: int,
                 num_classes: int) -> None:
        super().__init__()
        self.conv = _conv3x3(in_channels, 16)
        blocks, c_in = [], 16
        for group in range(3):
            c_out = 16 * widen * 2 ** group
            for index in range(blocks_per_group):
                stride = 2 if group > 0 and index == 0 else 1
                blocks.append(PreActBlock(c_in, c_out, stride, dropout))
                c_in = c_out
        self.blocks = nn.Sequential(*blocks)
        self.bn = nn.BatchNorm2d(c_in)
        self.fc = nn.Linear(c_in, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn(self.blocks(self.conv(x))))
        return self.fc(out.mean(dim=(2, 3)))


class WideResNetSpec(NamedTuple):
    depth: int
    widen: int
    dropout_percent: int


def parse(name: str) -> Optional[WideResNetSpec]:
    match = _MODEL_NAME.fullmatch(name)
    if match is None:
        return None
    depth, widen = int(match.group(1)), int(match.group(2))
    dropout = int(match.group(3)) if match.group(3) is not None else DEFAULT_DROPOUT_PERCENT
    if depth < 10 or (depth - 4) % 6 != 0 or dropout >= 100:
        return None
    return WideResNetSpec(depth, widen, dropout)


def build(spec: WideResNetSpec, input_shape: InputShape, num_classes: int) -> WideResNet:
    return WideResNet((spec.depth - 4) // 6, spec.widen, spec.dropout_percent / 100, input_shape[0], num_classes)


def default_hparams(name: str, spec: WideResNetSpec) -> dict:
    return recipes.rigl_cifar(name)


FAMILY = ModelFamily(
    pattern="[cifar_]wrn_D_K[_dropP] (D = 6n+4 >= 10 layers, K = widening factor, P = dropout %, default 30)",
    parse=parse, build=build, default_hparams=default_hparams)
