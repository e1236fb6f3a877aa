"""ImageNet and Tiny ImageNet folder trees → lists of (image path, class index), plus their transforms.

Layouts:
  imagenet:      <root>/imagenet/{train,val}/<wnid>/*.JPEG
  tinyimagenet:  <root>/tiny-imagenet-200/train/<wnid>/images/*.JPEG, and either the official
                 val/images/*.JPEG + val/val_annotations.txt (file, wnid, box) or val/<wnid>/*.JPEG
Class indices come from the sorted wnid folders of train/ for both splits, so they always agree.
"""

from pathlib import Path

import torch
from torchvision.datasets.folder import find_classes, make_dataset
from torchvision.transforms import v2

from foundations.errors import UserError

EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp")
_FOLDER = {"imagenet": "imagenet", "tinyimagenet": "tiny-imagenet-200"}
_HOW = {
    "imagenet": "get ILSVRC2012 from image-net.org and arrange train/ and val/ as one folder per wnid",
    "tinyimagenet": "unzip tiny-imagenet-200.zip (cs231n.stanford.edu) into the dataset root",
}

Samples = list[tuple[str, int]]


def folder(name: str, root: Path) -> Path:
    return Path(root) / _FOLDER[name]


def _missing(name: str, directory: Path, expected: str) -> UserError:
    return UserError(
        f"{name} not found: looked in {directory} for {expected}; {_HOW[name]} (--download cannot fetch it)"
    )


def _official_tiny_val(val_dir: Path, class_to_idx: dict[str, int]) -> Samples:
    samples = []
    for line in (val_dir / "val_annotations.txt").read_text().splitlines():
        if not line.strip():
            continue
        file_name, wnid = line.split("\t")[:2]
        if wnid not in class_to_idx:
            raise UserError(f"{val_dir / 'val_annotations.txt'} names class {wnid}, which has no folder in train/")
        samples.append((str(val_dir / "images" / file_name), class_to_idx[wnid]))
    return samples


def list_samples(name: str, train: bool, root: Path) -> tuple[Samples, list[str]]:
    """(samples, class names) of one split; samples are in a fixed order (sorted by class, then path)."""
    base = folder(name, root)
    train_dir = base / "train"
    if not train_dir.is_dir():
        raise _missing(name, train_dir, "one folder of images per class")
    classes, class_to_idx = find_classes(str(train_dir))
    split_dir = train_dir if train else base / "val"
    if not train and name == "tinyimagenet" and (split_dir / "val_annotations.txt").is_file():
        samples = _official_tiny_val(split_dir, class_to_idx)
    elif split_dir.is_dir():
        samples = make_dataset(str(split_dir), class_to_idx, extensions=EXTENSIONS, allow_empty=True)
    else:
        samples = []
    if not samples:
        raise _missing(name, split_dir, "images in one folder per class (.JPEG or .png)")
    return samples, classes


def transform(name: str, augment: bool, mean: tuple[float, ...], std: tuple[float, ...]) -> v2.Transform:
    """The standard transform of a uint8 (C, H, W) image: crop (and flip when augmenting), scale, normalize."""
    if name == "imagenet":
        if augment:
            crop = [v2.RandomResizedCrop(224), v2.RandomHorizontalFlip()]
        else:
            crop = [v2.Resize(256), v2.CenterCrop(224)]
    else:
        crop = [v2.RandomCrop(64, padding=4), v2.RandomHorizontalFlip()] if augment else []
    return v2.Compose([*crop, v2.ToDtype(torch.float32, scale=True), v2.Normalize(list(mean), list(std))])
