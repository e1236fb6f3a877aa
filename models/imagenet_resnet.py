"""ImageNet ResNets: torchvision's ResNet, with every stage's width scalable.

Names: `imagenet_resnet_{18,34,50,101,152}[_W]`, W = filters in the stem and first stage (default
64; stage k has W * 2**k). At W = 64 the model is torchvision's resnetD module for module, so its
state_dict keys and shapes match torchvision's (and its pretrained weights load into it).
Scaling W scales the stem, every block and the bottleneck widths alike.
"""

from __future__ import annotations

import re
from typing import NamedTuple, Optional

import torch.nn as nn
from torchvision.models import resnet as tv

from models import recipes
from models.base import InputShape, Model, ModelFamily

NAME = "imagenet_resnet"
SUMMARY = "torchvision's ImageNet ResNets, with every stage's width scalable"

DEPTHS: dict[int, tuple[type[nn.Module], tuple[int, int, int, int]]] = {
    18: (tv.BasicBlock, (2, 2, 2, 2)),
    34: (tv.BasicBlock, (3, 4, 6, 3)),
    50: (tv.Bottleneck, (3, 4, 6, 3)),
    101: (tv.Bottleneck, (3, 4, 23, 3)),
    152: (tv.Bottleneck, (3, 8, 36, 3)),
}
_MODEL_NAME = re.compile(r"imagenet_resnet_([1-9]\d*)(?:_([1-9]\d*))?")


class ImageNetResNet(Model, tv.ResNet):
    """torchvision's ResNet (its blocks, layer builder and forward) at any width and input depth.

    `small_stem` swaps the 7x7 stride-2 stem and its max-pool for one 3x3 stride-1 conv, which
    suits 64x64 inputs (TinyImageNet) better.
    """

    def __init__(self, depth: int, width: int, in_channels: int, num_classes: int,
                 small_stem: bool = False) -> None:
        nn.Module.__init__(self)  # tv.ResNet.__init__ fixes the width at 64; build the same modules here
        block, blocks_per_stage = DEPTHS[depth]
        # State that tv.ResNet._make_layer reads (and advances, in the case of inplanes).
        self._norm_layer = nn.BatchNorm2d
        self.groups, self.base_width, self.dilation = 1, 64, 1
        self.inplanes = width

        if small_stem:
            self.conv1 = nn.Conv2d(in_channels, width, kernel_size=3, stride=1, padding=1, bias=False)
            self.maxpool: nn.Module = nn.Identity()
        else:
            self.conv1 = nn.Conv2d(in_channels, width, kernel_size=7, stride=2, padding=3, bias=False)
            self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.layer1 = self._make_layer(block, width, blocks_per_stage[0])
        self.layer2 = self._make_layer(block, width * 2, blocks_per_stage[1], stride=2)
        self.layer3 = self._make_layer(block, width * 4, blocks_per_stage[2], stride=2)
        self.layer4 = self._make_layer(block, width * 8, blocks_per_stage[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(self.inplanes, num_classes)


class ResNetSpec(NamedTuple):
    depth: int
    width: int


def parse_depth_width(depth: str, width: Optional[str]) -> Optional[ResNetSpec]:
    """The spec for a depth in DEPTHS and a width (default 64); None for other depths."""
    if int(depth) not in DEPTHS:
        return None
    return ResNetSpec(int(depth), int(width or 64))


def parse(name: str) -> Optional[ResNetSpec]:
    match = _MODEL_NAME.fullmatch(name)
    return None if match is None else parse_depth_width(match.group(1), match.group(2))


def build(spec: ResNetSpec, input_shape: InputShape, num_classes: int) -> ImageNetResNet:
    return ImageNetResNet(spec.depth, spec.width, input_shape[0], num_classes)


def default_hparams(name: str, spec: ResNetSpec) -> dict:
    return recipes.imagenet(name)


FAMILY = ModelFamily(
    pattern="imagenet_resnet_{18,34,50,101,152}[_W] (W = stem/first-stage width, default 64)",
    parse=parse, build=build, default_hparams=default_hparams)
