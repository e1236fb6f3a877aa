"""TinyImageNet ResNets (64x64 inputs, 200 classes).

Names: `tinyimagenet_resnet_D[_W]` is the ImageNet ResNet unchanged (torchvision's resnetD at
W = 64); `tinyimagenet_modifiedresnet_D[_W]` replaces its 7x7 stride-2 stem and max-pool with a
single 3x3 stride-1 conv, so the small images are not downsampled fourfold before the first stage.
D is one of 18, 34, 50, 101, 152.

The head: `_headN` at the end of a name gives the output layer N units (N at least the dataset's
classes); without it the head has one unit per class. `_head1000` is OpenLTH's and the "Missing
the Mark" fork's head: a bug there (the lottery descriptor's `train_outputs` lacks its `return`,
and the fork's trunk and oneshot branch build the model without `outputs`, so
`imagenet_resnet.Model` falls back to `outputs or 1000`), which the fork's Tiny ImageNet numbers
depend on: the cross-entropy is a softmax over 1000 logits, 800 of them for classes that never
occur, and the 800 extra rows of `fc.weight` are ranked and pruned with every other weight (they
are in the count that a sparsity is a fraction of). The plain name keeps its earlier meaning (200
outputs on Tiny ImageNet) because a name's meaning is part of its run hash: giving it the fork's
head would have made finished runs' directories hold a different network than their name says.
"""

from __future__ import annotations

import re
from typing import NamedTuple, Optional

from foundations.errors import UserError
from models import recipes
from models.base import InputShape, Model, ModelFamily
from models.imagenet_resnet import ResNetSpec, parse_depth_width

NAME = "tinyimagenet_resnet"
SUMMARY = "ImageNet ResNets for Tiny ImageNet, optionally with a 3x3 stride-1 stem"

_MODEL_NAME = re.compile(r"tinyimagenet_(resnet|modifiedresnet)_([1-9]\d*)(?:_([1-9]\d*))?(?:_head([1-9]\d*))?")
FORK_OUTPUTS = 1000  # OpenLTH's and the fork's head, whatever the dataset's classes: `_head1000`


class TinyResNetSpec(NamedTuple):
    resnet: ResNetSpec
    small_stem: bool
    outputs: Optional[int] = None  # None: one per class


def parse(name: str) -> Optional[TinyResNetSpec]:
    match = _MODEL_NAME.fullmatch(name)
    if match is None:
        return None
    resnet = parse_depth_width(match.group(2), match.group(3))
    if resnet is None:
        return None
    outputs = int(match.group(4)) if match.group(4) else None
    return TinyResNetSpec(resnet, match.group(1) == "modifiedresnet", outputs)


def build(spec: TinyResNetSpec, input_shape: InputShape, num_classes: int) -> Model:
    from models._resnet_network import ImageNetResNet  # torchvision: imported only to build one
    depth, width = spec.resnet
    outputs = spec.outputs or num_classes
    if outputs < num_classes:
        raise UserError(f"a head of {outputs} outputs cannot score {num_classes} classes: name a head of at "
                        f"least {num_classes} (e.g. _head{FORK_OUTPUTS}, the fork's), or none for one per class")
    return ImageNetResNet(depth, width, input_shape[0], outputs, small_stem=spec.small_stem)


def default_hparams(name: str, spec: TinyResNetSpec) -> dict:
    return recipes.tinyimagenet(name)


FAMILY = ModelFamily(
    pattern="tinyimagenet_[modified]resnet_{18,34,50,101,152}[_W][_headN] (modified: 3x3 stride-1 stem, no "
            "max-pool; N outputs, default one per class; _head1000 is OpenLTH's and its fork's head)",
    parse=parse, build=build, default_hparams=default_hparams)
