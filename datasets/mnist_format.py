"""MNIST-family files (IDX format, raw or gzipped) → uint8 image and int64 label tensors.

Layout: `<root>/MNIST/raw/` or `<root>/FashionMNIST/raw/` holding torchvision's four file names,
each raw or with `.gz`. Fashion-MNIST is also found in Debian's flat directory
`FASHION_MNIST_FALLBACK` (package dataset-fashion-mnist) when it is absent from the root.
"""

import gzip
from pathlib import Path

import torch
import torchvision
from torchvision.datasets.mnist import read_image_file, read_label_file

from foundations.errors import UserError

FASHION_MNIST_FALLBACK = Path("/usr/share/datasets/fashion-mnist")

_FOLDER = {"mnist": "MNIST", "fashionmnist": "FashionMNIST"}
_TORCHVISION_CLASS = {"mnist": torchvision.datasets.MNIST, "fashionmnist": torchvision.datasets.FashionMNIST}
_UBYTE = 0x08


def file_names(train: bool) -> tuple[str, str]:
    """(images, labels) file names of a split, without the optional .gz."""
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
    return read_gzipped_idx(path) if path.suffix == ".gz" else read_image_file(str(path))


def _read_labels(path: Path) -> torch.Tensor:
    return read_gzipped_idx(path).long() if path.suffix == ".gz" else read_label_file(str(path))


def _find_files(directory: Path, train: bool) -> tuple[Path, Path] | None:
    """The split's (images, labels) files in `directory`, preferring raw over .gz; None if either is missing."""
    found = []
    for name in file_names(train):
        candidates = [directory / name, directory / f"{name}.gz"]
        present = [p for p in candidates if p.is_file()]
        if not present:
            return None
        found.append(present[0])
    return found[0], found[1]


def search_dirs(name: str, root: Path) -> list[Path]:
    """Directories searched for `name`, in order."""
    dirs = [Path(root) / _FOLDER[name] / "raw"]
    if name == "fashionmnist":
        dirs.append(FASHION_MNIST_FALLBACK)
    return dirs


def _missing(name: str, train: bool, dirs: list[Path]) -> UserError:
    files = ", ".join(f"{f}[.gz]" for f in file_names(train))
    where = " or ".join(str(d) for d in dirs)
    how = "pass --download"
    if name == "fashionmnist":
        how = f"run `apt-get install dataset-fashion-mnist`, copy the files into {dirs[0]}, or pass --download"
    return UserError(f"{name} not found: looked in {where} for {files}; {how}")


def read_split(name: str, train: bool, root: Path, download: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 images (N, 1, 28, 28) and int64 labels (N,) of one split of mnist or fashionmnist."""
    dirs = search_dirs(name, root)
    files = next((f for f in (_find_files(d, train) for d in dirs) if f is not None), None)
    if files is None and download:
        try:
            _TORCHVISION_CLASS[name](root=str(root), train=train, download=True)
        except Exception as error:  # network or disk failures: tell the user, not a traceback
            raise UserError(f"downloading {name} into {dirs[0]} failed ({error}); fetch the files by hand") from error
        files = _find_files(dirs[0], train)
    if files is None:
        raise _missing(name, train, dirs)
    images, labels = _read_images(files[0]), _read_labels(files[1])
    if images.ndim != 3 or labels.shape != images.shape[:1]:
        shapes = f"{tuple(images.shape)} vs {tuple(labels.shape)}"
        raise UserError(f"{files[0]} and {files[1]} disagree ({shapes}): re-download them")
    return images.unsqueeze(1), labels
