"""MNIST-family files (IDX format, raw or gzipped) → uint8 image and int64 label tensors.

An `IdxFiles` layout says where one dataset's files are: `<root>/<directory>/raw/` (where
torchvision's class for that dataset downloads them), then an optional fallback directory, each
holding the four files raw or with `.gz`.
"""

import gzip
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from datasets.download import download as download_split
from foundations.errors import UserError

_UBYTE = 0x08


def file_names(train: bool) -> tuple[str, str]:
    """The standard (images, labels) file names of a split (MNIST's), without the optional .gz."""
    prefix = "train" if train else "t10k"
    return f"{prefix}-images-idx3-ubyte", f"{prefix}-labels-idx1-ubyte"


def read_gzipped_idx(path: Path) -> torch.Tensor:
    """An unsigned-byte IDX file compressed with gzip → uint8 tensor of the shape its header declares."""
    data = gzip.decompress(Path(path).read_bytes())
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != _UBYTE:
        raise UserError(f"{path} is not an unsigned-byte IDX file: replace it with the original download")
    ndim = data[3]
    shape = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    offset = 4 + 4 * ndim
    if len(data) - offset != torch.Size(shape).numel():
        raise UserError(f"{path} is truncated (header says {shape}): replace it with the original download")
    return torch.frombuffer(bytearray(data), dtype=torch.uint8, offset=offset).view(shape)


def _read_images(path: Path) -> torch.Tensor:
    from torchvision.datasets.mnist import read_image_file  # torchvision: only for uncompressed files

    return read_gzipped_idx(path) if path.suffix == ".gz" else read_image_file(str(path))


def _read_labels(path: Path) -> torch.Tensor:
    from torchvision.datasets.mnist import read_label_file

    return read_gzipped_idx(path).long() if path.suffix == ".gz" else read_label_file(str(path))


def _find_files(directory: Path, names: tuple[str, str]) -> tuple[Path, Path] | None:
    """The (images, labels) files in `directory`, preferring raw over .gz; None if either is missing."""
    found = []
    for name in names:
        candidates = [directory / name, directory / f"{name}.gz"]
        present = [p for p in candidates if p.is_file()]
        if not present:
            return None
        found.append(present[0])
    return found[0], found[1]


@dataclass(frozen=True)
class IdxFiles:
    """Where one MNIST-family dataset's IDX files are, and what to do when they are not there.

    directory: the folder under the dataset root; files are looked for in `<root>/<directory>/raw/`.
    download_class: the name of the torchvision dataset class that `--download` uses (it must download into
        that same folder: torchvision names the folder after the class), or None if it cannot.
    fallback: a function giving one more directory to search after the root's (called at read time).
    how_to_get: what the missing-files error tells the user to do; `{directory}` stands for
        `<root>/<directory>/raw`. By default: pass --download, or copy the files there.
    """

    directory: str
    train_files: tuple[str, str] = file_names(True)
    test_files: tuple[str, str] = file_names(False)
    download_class: str | None = None
    fallback: Callable[[], Path] | None = None
    how_to_get: str | None = None

    def names(self, train: bool) -> tuple[str, str]:
        """(images, labels) file names of a split, without the optional .gz."""
        return self.train_files if train else self.test_files

    def search_dirs(self, root: Path) -> list[Path]:
        """Directories searched, in order."""
        dirs = [Path(root) / self.directory / "raw"]
        if self.fallback is not None:
            dirs.append(Path(self.fallback()))
        return dirs

    def read_split(
        self, name: str, train: bool, root: Path, download: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """uint8 images (N, 1, H, W) and int64 labels (N,) of one split."""
        dirs = self.search_dirs(root)
        files = next((f for f in (_find_files(d, self.names(train)) for d in dirs) if f is not None), None)
        if files is None and download and self.download_class is not None:
            download_split(self.download_class, name, root, train, where=dirs[0], what="the files")
            files = _find_files(dirs[0], self.names(train))
        if files is None:
            raise self._missing(name, train, dirs)
        images, labels = _read_images(files[0]), _read_labels(files[1])
        if images.ndim != 3 or labels.shape != images.shape[:1]:
            shapes = f"{tuple(images.shape)} vs {tuple(labels.shape)}"
            raise UserError(f"{files[0]} and {files[1]} disagree ({shapes}): re-download them")
        return images.unsqueeze(1), labels

    def _missing(self, name: str, train: bool, dirs: list[Path]) -> UserError:
        files = ", ".join(f"{f}[.gz]" for f in self.names(train))
        where = " or ".join(str(d) for d in dirs)
        how = self.how_to_get or ("pass --download" if self.download_class else "copy the files into {directory}")
        return UserError(f"{name} not found: looked in {where} for {files}; {how.format(directory=dirs[0])}")
