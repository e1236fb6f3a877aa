"""The datasets open_prune knows: static facts, and loaders built from `DatasetHparams`.

    info(name)                       facts only, reads no files
    get(hparams, train, root=..., device=...)   a loader over one split

Files are read once per process: splits are cached by (name, split, root) and, for in-memory sets,
their device copies by device as well. `clear_cache()` forgets them.
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch

from datasets import cifar_format, folder_format, mnist_format
from datasets.folder_loader import FolderLoader
from datasets.loader import Loader
from datasets.memory_loader import InMemoryLoader
from datasets.selection import randomize_labels, subsample_indices
from foundations.errors import UserError


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    num_classes: int
    input_shape: tuple[int, int, int]  # (C, H, W) of one model input
    num_train: int
    num_test: int


@dataclass(frozen=True)
class _Spec:
    info: DatasetInfo
    mean: tuple[float, ...]  # per-channel statistics of the training images, in [0, 1] pixel units
    std: tuple[float, ...]
    read: Callable[..., tuple[torch.Tensor, torch.Tensor]] | None  # in-memory reader, None for folder sets
    pad_crop: int | None = None  # training augmentation of in-memory sets: pad-crop-flip by this many pixels


_SPECS = {
    s.info.name: s
    for s in [
        _Spec(DatasetInfo("mnist", 10, (1, 28, 28), 60000, 10000), (0.1307,), (0.3081,), mnist_format.read_split),
        _Spec(
            DatasetInfo("fashionmnist", 10, (1, 28, 28), 60000, 10000), (0.2860,), (0.3530,), mnist_format.read_split,
        ),
        _Spec(
            DatasetInfo("cifar10", 10, (3, 32, 32), 50000, 10000),
            (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616), cifar_format.read_split, pad_crop=4,
        ),
        _Spec(
            DatasetInfo("cifar100", 100, (3, 32, 32), 50000, 10000),
            (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762), cifar_format.read_split, pad_crop=4,
        ),
        _Spec(
            DatasetInfo("tinyimagenet", 200, (3, 64, 64), 100000, 10000),
            (0.4802, 0.4481, 0.3975), (0.2770, 0.2691, 0.2821), None,
        ),
        _Spec(
            DatasetInfo("imagenet", 1000, (3, 224, 224), 1281167, 50000),
            (0.485, 0.456, 0.406), (0.229, 0.224, 0.225), None,
        ),
    ]
}

_CACHE: dict[tuple, Any] = {}


def names() -> list[str]:
    return list(_SPECS)


def _spec(name: str) -> _Spec:
    if name not in _SPECS:
        raise UserError(f"unknown dataset {name!r}: choose one of {', '.join(_SPECS)}")
    return _SPECS[name]


def info(name: str) -> DatasetInfo:
    """Static facts about a dataset (the full dataset, whatever is on disk)."""
    return _spec(name).info


def clear_cache() -> None:
    """Forget every split read so far (the next `get` reads the files again)."""
    _CACHE.clear()


def _cached(key: tuple, load: Callable[[], Any]) -> Any:
    if key not in _CACHE:
        _CACHE[key] = load()
    return _CACHE[key]


def _check(hparams: Any, num_workers: int) -> None:
    if hparams.batch_size < 1:
        raise UserError(f"--batch_size={hparams.batch_size} must be a positive integer")
    if num_workers < 0:
        raise UserError(f"num_workers={num_workers} must be >= 0")


def get(
    dataset_hparams: Any,
    train: bool,
    *,
    root: Path,
    device: torch.device | str,
    download: bool = False,
    num_workers: int = 0,
) -> Loader:
    """A loader over the training split (`train`) or the test split of `dataset_hparams.dataset_name`.

    subsample_fraction and random_labels_fraction (training split only) are seeded by
    transformation_seed: first a subset is kept, then labels of that subset are randomized.
    """
    h = dataset_hparams
    name, spec = h.dataset_name, _spec(h.dataset_name)
    _check(h, num_workers)
    root, device = Path(root).expanduser().resolve(), torch.device(device)
    seed = h.transformation_seed
    augment = train and not h.do_not_augment
    if spec.read is not None:
        cpu = _cached((name, train, root), lambda: spec.read(name, train, root, download))
        images, labels = _cached((name, train, root, str(device)), lambda: (cpu[0].to(device), cpu[1].to(device)))
        if train and h.subsample_fraction is not None:
            kept = subsample_indices(images.shape[0], h.subsample_fraction, seed).to(device)
            images, labels = images.index_select(0, kept), labels.index_select(0, kept)
        if train and h.random_labels_fraction is not None:
            labels = randomize_labels(labels, h.random_labels_fraction, spec.info.num_classes, seed)
        return InMemoryLoader(
            images, labels, num_classes=spec.info.num_classes, batch_size=h.batch_size, mean=spec.mean,
            std=spec.std, transformation_seed=seed, augment_padding=spec.pad_crop if augment else None,
        )

    samples, classes = _cached((name, train, root), lambda: folder_format.list_samples(name, train, root))
    if train and h.subsample_fraction is not None:
        samples = [samples[i] for i in subsample_indices(len(samples), h.subsample_fraction, seed).tolist()]
    if train and h.random_labels_fraction is not None:
        labels = torch.tensor([label for _, label in samples])
        labels = randomize_labels(labels, h.random_labels_fraction, len(classes), seed).tolist()
        samples = [(path, label) for (path, _), label in zip(samples, labels)]
    return FolderLoader(
        samples, num_classes=len(classes), batch_size=h.batch_size,
        transform=folder_format.transform(name, augment, spec.mean, spec.std),
        plain_transform=folder_format.transform(name, False, spec.mean, spec.std),
        augment=augment, transformation_seed=seed, device=device, num_workers=num_workers,
    )
