"""Folder trees of images, one folder per class → lists of (image path, class index), plus transforms.

An `ImageFolders` layout says where one dataset's tree is and how its images are cropped:
  <root>/<directory>/<train_dir>/<class>/**/<image>    (any depth below the class folder)
  <root>/<directory>/<test_dir>/<class>/**/<image>, or, when the layout names an annotations file
  and it is present, <test_dir>/images/<file> with one "<file>\t<class>..." line per image in
  <test_dir>/<annotations> (Tiny ImageNet's official validation layout).
Class indices come from the sorted class folders of the training directory for both splits, so
they always agree.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from foundations.errors import UserError

if TYPE_CHECKING:  # torchvision is imported where images are listed or transformed, not to name a dataset
    from torchvision.transforms import v2

EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp")

Samples = list[tuple[str, int]]


def _annotated_samples(split_dir: Path, annotations: str, class_to_idx: dict[str, int], train_dir: str) -> Samples:
    samples = []
    for line in (split_dir / annotations).read_text().splitlines():
        if not line.strip():
            continue
        file_name, class_name = line.split("\t")[:2]
        if class_name not in class_to_idx:
            raise UserError(f"{split_dir / annotations} names class {class_name}, which has no folder in {train_dir}/")
        samples.append((str(split_dir / "images" / file_name), class_to_idx[class_name]))
    return samples


@dataclass(frozen=True)
class ImageFolders:
    """Where one folder-tree dataset is, and the crops its images get before scaling and normalizing.

    directory: the folder under the dataset root.
    how_to_get: what the missing-files error tells the user to do (--download cannot fetch these).
    augmented: transforms of a uint8 (C, H, W) image for augmented training (random crops, flips).
    plain: transforms for evaluation and unaugmented training; both must yield `input_shape` images.
    annotations: a file in the test directory that lists (file, class) per line, if the layout has one.
    """

    directory: str
    how_to_get: str
    augmented: tuple[v2.Transform, ...] = ()
    plain: tuple[v2.Transform, ...] = ()
    annotations: str | None = None
    train_dir: str = "train"
    test_dir: str = "val"

    def _missing(self, name: str, directory: Path, expected: str) -> UserError:
        return UserError(
            f"{name} not found: looked in {directory} for {expected}; {self.how_to_get} (--download cannot fetch it)"
        )

    def list_samples(self, name: str, train: bool, root: Path) -> tuple[Samples, list[str]]:
        """(samples, class names) of one split; samples are in a fixed order (sorted by class, then path)."""
        base = Path(root) / self.directory
        train_dir = base / self.train_dir
        if not train_dir.is_dir():
            raise self._missing(name, train_dir, "one folder of images per class")
        from torchvision.datasets.folder import find_classes, make_dataset

        classes, class_to_idx = find_classes(str(train_dir))
        split_dir = train_dir if train else base / self.test_dir
        if not train and self.annotations is not None and (split_dir / self.annotations).is_file():
            samples = _annotated_samples(split_dir, self.annotations, class_to_idx, self.train_dir)
        elif split_dir.is_dir():
            samples = make_dataset(str(split_dir), class_to_idx, extensions=EXTENSIONS, allow_empty=True)
        else:
            samples = []
        if not samples:
            raise self._missing(name, split_dir, "images in one folder per class (.JPEG or .png)")
        return samples, classes

    def transform(self, augment: bool, mean: tuple[float, ...], std: tuple[float, ...],
                  pixel_scale: float = 255.0) -> v2.Transform:
        """The transform of a uint8 (C, H, W) image: crop (and flip when augmenting), scale to [0, 1]
        (unless pixel_scale is 1: raw 0-255 values), normalize."""
        from torchvision.transforms import v2

        crop = self.augmented if augment else self.plain
        to_float = v2.ToDtype(torch.float32, scale=pixel_scale != 1)
        return v2.Compose([*crop, to_float, v2.Normalize(list(mean), list(std))])
