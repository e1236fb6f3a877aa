"""ImageNet ResNets: torchvision's ResNet, with every stage's width scalable.

Names: `imagenet_resnet_{18,34,50,101,152}[_W]`, W = filters in the stem and first stage (default
64; stage k has W * 2**k). At W = 64 the model is torchvision's resnetD module for module, so its
state_dict keys and shapes match torchvision's (and its pretrained weights load into it).
Scaling W scales the stem, every block and the bottleneck widths alike.
"""

from __future__ import annotations

import re
from typing import NamedTuple, Optional

from models import recipes
from models.base import InputShape, Model, ModelFamily

NAME = "imagenet_resnet"
SUMMARY = "torchvision's ImageNet ResNets, with every stage's width scalable"

DEPTHS = (18, 34, 50, 101, 152)  # the blocks of each: models/_resnet_network.py
_MODEL_NAME = re.compile(r"imagenet_resnet_([1-9]\d*)(?:_([1-9]\d*))?")


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


def build(spec: ResNetSpec, input_shape: InputShape, num_classes: int) -> Model:
    from models._resnet_network import ImageNetResNet  # torchvision: imported only to build one
    return ImageNetResNet(spec.depth, spec.width, input_shape[0], num_classes)


def default_hparams(name: str, spec: ResNetSpec) -> dict:
    return recipes.imagenet(name)


FAMILY = ModelFamily(
    pattern="imagenet_resnet_{18,34,50,101,152}[_W] (W = stem/first-stage width, default 64)",
    parse=parse, build=build, default_hparams=default_hparams)
