"""The network behind the ImageNet and TinyImageNet ResNet families: torchvision's ResNet (its
blocks, layer builder and forward) at any width. Apart from the families (models/imagenet_resnet.py)
so that naming and listing models does not import torchvision; a model is built only when asked."""

from __future__ import annotations

import torch.nn as nn
from torchvision.models import resnet as tv

from models.base import Model

BLOCKS: dict[int, tuple[type[nn.Module], tuple[int, int, int, int]]] = {
    18: (tv.BasicBlock, (2, 2, 2, 2)),
    34: (tv.BasicBlock, (3, 4, 6, 3)),
    50: (tv.Bottleneck, (3, 4, 6, 3)),
    101: (tv.Bottleneck, (3, 4, 23, 3)),
    152: (tv.Bottleneck, (3, 8, 36, 3)),
}


class ImageNetResNet(Model, tv.ResNet):
    """torchvision's ResNet (its blocks, layer builder and forward) at any width and input depth.

    `small_stem` swaps the 7x7 stride-2 stem and its max-pool for one 3x3 stride-1 conv, which
    suits 64x64 inputs (TinyImageNet) better.
    """

    def __init__(self, depth: int, width: int, in_channels: int, num_classes: int,
                 small_stem: bool = False) -> None:
        nn.Module.__init__(self)  # tv.ResNet.__init__ fixes the width at 64; build the same modules here
        block, blocks_per_stage = BLOCKS[depth]
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
