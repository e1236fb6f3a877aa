"""TinyImageNet ResNets (64x64 inputs, 200 classes).

Names: `tinyimagenet_resnet_D[_W]` is the ImageNet ResNet unchanged (torchvision's resnetD at
W = 64); `tinyimagenet_modifiedresnet_D[_W]` replaces its 7x7 stride-2 stem and max-pool with a
single 3x3 stride-1 conv, so the small images are not downsampled fourfold before the first stage.
D is one of 18, 34, 50, 101, 152.
"""

from __future__ import annotations

import re
from typing import NamedTuple, Optional

from models import recipes
from models.base import InputShape, Model, ModelFamily
from models.imagenet_resnet import ResNetSpec, parse_depth_width

NAME = "tinyimagenet_resnet"
SUMMARY = "ImageNet ResNets for Tiny ImageNet, optionally with a 3x3 stride-1 stem"

_MODEL_NAME = re.compile(r"tinyimagenet_(resnet|modifiedresnet)_([1-9]\d*)(?:_([1-9]\d*))?")


class TinyResNetSpec(NamedTuple):
    resnet: ResNetSpec
    small_stem: bool


def parse(name: str) -> Optional[TinyResNetSpec]:
    match = _MODEL_NAME.fullmatch(name)
    if match is None:
        return None
    resnet = parse_depth_width(match.group(2), match.group(3))
    return None if resnet is None else TinyResNetSpec(resnet, match.group(1) == "modifiedresnet")


def build(spec: TinyResNetSpec, input_shape: InputShape, num_classes: int) -> Model:
    from models._resnet_network import ImageNetResNet  # torchvision: imported only to build one
    depth, width = spec.resnet
    return ImageNetResNet(depth, width, input_shape[0], num_classes, small_stem=spec.small_stem)


def default_hparams(name: str, spec: TinyResNetSpec) -> dict:
    return recipes.tinyimagenet(name)


FAMILY = ModelFamily(
    pattern="tinyimagenet_[modified]resnet_{18,34,50,101,152}[_W] (modified: 3x3 stride-1 stem, no max-pool)",
    parse=parse, build=build, default_hparams=default_hparams)
