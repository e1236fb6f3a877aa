"""CIFAR-10/100 pickled batches (the "python version" archives) → uint8 image and int64 label tensors.

A `PickledBatches` layout names one dataset's folder under the root, the files of each split and
the key of the labels. Each file is a pickled dict with a (n, 3072) uint8 array under "data" (1024 red, then green,
then blue values of a 32x32 image, row-major) and a list of labels under the layout's label key.
"""

import pickle
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch

from datasets.download import download as download_split
from foundations.errors import UserError

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


@dataclass(frozen=True)
class PickledBatches:
    """Where one CIFAR-format dataset's batch files are.

    directory: the folder under the dataset root holding the batch files.
    train_files, test_files: the files of each split, concatenated in this order.
    label_key: the key of the label list in each batch ("labels" in CIFAR-10, "fine_labels" in CIFAR-100).
    download_class: the name of the torchvision dataset class that `--download` uses (it must unpack into
        `<root>/<directory>`), or None if it cannot.
    """

    directory: str
    train_files: tuple[str, ...]
    test_files: tuple[str, ...]
    label_key: str
    download_class: str | None = None

    def read_split(
        self, name: str, train: bool, root: Path, download: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """uint8 images (N, 3, 32, 32) and int64 labels (N,) of one split."""
        directory = Path(root) / self.directory
        paths = [directory / f for f in (self.train_files if train else self.test_files)]
        if not all(p.is_file() for p in paths) and download and self.download_class is not None:
            download_split(self.download_class, name, root, train, where=root, what="the archive")
        missing = [p.name for p in paths if not p.is_file()]
        if missing:
            how = " or pass --download" if self.download_class is not None else ""
            raise UserError(
                f"{name} not found: looked in {directory} for {', '.join(missing)}; "
                f"unpack the CIFAR python archive into {root}{how}"
            )
        parts = [_read_batch(p, self.label_key) for p in paths]
        return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])
