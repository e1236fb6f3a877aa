"""Tiny ImageNet: 64x64 colour images of 200 classes, as unzipped into `<root>/tiny-imagenet-200/`.

train/<wnid>/images/*.JPEG; val/ either in the official layout (val/images/ plus
val_annotations.txt) or as one folder per wnid. Training augmentation: 4-pixel pad-crop and flip.
"""

from torchvision.transforms import v2

from datasets.folder_format import ImageFolders
from datasets.spec import DatasetSpec

NAME = "tinyimagenet"
SUMMARY = "Tiny ImageNet: 64x64 colour images, 200 classes"

SPEC = DatasetSpec(
    name=NAME,
    num_classes=200,
    input_shape=(3, 64, 64),
    num_train=100000,
    num_test=10000,
    mean=(0.4802, 0.4481, 0.3975),
    std=(0.2770, 0.2691, 0.2821),
    files=ImageFolders(
        directory="tiny-imagenet-200",
        how_to_get="unzip tiny-imagenet-200.zip (cs231n.stanford.edu) into the dataset root",
        augmented=(v2.RandomCrop(64, padding=4), v2.RandomHorizontalFlip()),
        annotations="val_annotations.txt",
    ),
    rank=50,
)
