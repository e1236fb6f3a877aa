"""CIFAR-10/100 pickled batches (the "python version" archives) → uint8 image and int64 label tensors.

Layout: `<root>/cifar-10-batches-py/{data_batch_1..5, test_batch}` and
`<root>/cifar-100-python/{train, test}`. Each file is a pickled dict with a (n, 3072) uint8 array
under "data" (1024 red, then green, then blue values, row-major) and a list of labels.
"""

import pickle
import warnings
from pathlib import Path

import torch
import torchvision

from foundations.errors import UserError

# name: (folder, train files, test files, label key, torchvision class used for --download)
_LAYOUT = {
    "cifar10": (
        "cifar-10-batches-py",
        [f"data_batch_{i}" for i in range(1, 6)],
        ["test_batch"],
        "labels",
        torchvision.datasets.CIFAR10,
    ),
    "cifar100": ("cifar-100-python", ["train"], ["test"], "fine_labels", torchvision.datasets.CIFAR100),
}

# The globals a CIFAR batch pickle needs (numpy arrays and the Python 2 string codec); anything else is refused,
# so a file in the dataset root cannot run code when it is read.
_ALLOWED_GLOBALS = {
    ("_codecs", "encode"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
}


class _BatchUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) not in _ALLOWED_GLOBALS:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        with warnings.catch_warnings():  # numpy 2 warns on the numpy.core alias that old pickles name
            warnings.simplefilter("ignore", DeprecationWarning)
            return super().find_class(module, name)


def _read_batch(path: Path, label_key: str) -> tuple[torch.Tensor, torch.Tensor]:
    try:
        with open(path, "rb") as f:
            batch = _BatchUnpickler(f, encoding="latin1").load()
        batch = {k.decode() if isinstance(k, bytes) else k: v for k, v in batch.items()}
        images = torch.as_tensor(batch["data"], dtype=torch.uint8).reshape(-1, 3, 32, 32)
        labels = torch.as_tensor(batch[label_key], dtype=torch.int64)
    except (pickle.UnpicklingError, KeyError, AttributeError, EOFError, ValueError, RuntimeError) as error:
        raise UserError(f"{path} is not a CIFAR batch ({error}): replace it with the original download") from error
    if labels.shape != images.shape[:1]:
        raise UserError(f"{path} holds {images.shape[0]} images but {labels.numel()} labels: replace it")
    return images, labels


def folder(name: str, root: Path) -> Path:
    return Path(root) / _LAYOUT[name][0]


def read_split(name: str, train: bool, root: Path, download: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 images (N, 3, 32, 32) and int64 labels (N,) of one split of cifar10 or cifar100."""
    directory, train_files, test_files, label_key, torchvision_class = _LAYOUT[name]
    directory = Path(root) / directory
    paths = [directory / f for f in (train_files if train else test_files)]
    if not all(p.is_file() for p in paths) and download:
        try:
            torchvision_class(root=str(root), train=train, download=True)
        except Exception as error:  # network or disk failures: tell the user, not a traceback
            raise UserError(f"downloading {name} into {root} failed ({error}); fetch the archive by hand") from error
    missing = [p.name for p in paths if not p.is_file()]
    if missing:
        raise UserError(
            f"{name} not found: looked in {directory} for {', '.join(missing)}; "
            f"unpack the CIFAR python archive into {root} or pass --download"
        )
    parts = [_read_batch(p, label_key) for p in paths]
    return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])
