"""Tiny ImageNet as the "Missing the Mark" fork of OpenLTH reads it for its modified ResNet-18
(`tinyimagenet2` in the fork's datasets/registry.py): the same files as `tinyimagenet`
(`<root>/tiny-imagenet-200/`, train/<wnid>/images/*.JPEG, val/images/ with val_annotations.txt or
one folder per wnid), read the fork's way:

- inputs are (pixels / 255 - mean) / std with the fork's constants, mean (-0.021, -0.0354, -0.0376)
  and std (1.21, 1.20, 1.25) ("TinyImageNet appears to already be normalized", its comment says),
  not the training images' statistics that `tinyimagenet` uses;
- training augmentation is a 4-pixel pad-crop to 64 and a horizontal flip (the fork's first layout,
  `tinyimagenet`, took a RandomResizedCrop(64, scale 0.1-1, ratio 0.8-1.25) instead); evaluation
  and unaugmented training resize the shorter side to 64 (nothing changes on the 64x64 images).

Train it with `--dataset_name=tinyimagenet2 --model_name=tinyimagenet_modifiedresnet_18` (the fork's
recipe for that model names `tinyimagenet`: give the dataset explicitly).
"""

from torchvision.transforms import v2

from datasets.folder_format import ImageFolders
from datasets.spec import DatasetSpec

NAME = "tinyimagenet2"
SUMMARY = "Tiny ImageNet the 'Missing the Mark' fork's second way: its fixed normalization, pad-crop and flip"

SPEC = DatasetSpec(
    name=NAME,
    num_classes=200,
    input_shape=(3, 64, 64),
    num_train=100000,
    num_test=10000,
    mean=(-0.021, -0.0354, -0.0376),
    std=(1.21, 1.20, 1.25),
    files=ImageFolders(
        directory="tiny-imagenet-200",
        how_to_get="unzip tiny-imagenet-200.zip (cs231n.stanford.edu) into the dataset root",
        augmented=(v2.RandomCrop(64, padding=4), v2.RandomHorizontalFlip()),
        plain=(v2.Resize(64),),
        annotations="val_annotations.txt",
    ),
    rank=51,
)
