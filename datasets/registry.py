"""The datasets open_prune knows, and loaders built from `DatasetHparams`.

    names()                          every dataset, found in datasets/catalog/ (one module each)
    info(name)                       facts only, reads no files
    get(hparams, train, root=..., device=...)   a loader over one split

Files are read once per process: splits are cached by (name, split, root) and, for in-memory sets,
their device copies by device as well. `clear_cache()` forgets them.
"""

import functools
import importlib
import pkgutil
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any, Callable

import torch

from datasets import catalog
from datasets.folder_format import ImageFolders
from datasets.folder_loader import FolderLoader
from datasets.loader import Loader
from datasets.memory_loader import InMemoryLoader
from datasets.selection import randomize_labels, subsample_indices
from datasets.spec import DatasetInfo, DatasetSpec
from foundations.errors import UserError

__all__ = ["DatasetInfo", "DatasetSpec", "clear_cache", "get", "info", "names", "spec", "specs"]


@functools.cache
def specs() -> Mapping[str, DatasetSpec]:
    """Every catalog entry by name, in rank order (ties by name). Call `specs.cache_clear()` to look again."""
    found: dict[str, DatasetSpec] = {}
    for module_info in pkgutil.iter_modules(catalog.__path__):
        if module_info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{catalog.__name__}.{module_info.name}")
        entry = getattr(module, "SPEC", None)
        if not isinstance(entry, DatasetSpec):
            continue
        if entry.name in found:
            raise ValueError(f"two catalog modules define the dataset {entry.name!r}; rename one")
        found[entry.name] = entry
    return MappingProxyType(dict(sorted(found.items(), key=lambda item: (item[1].rank, item[0]))))


_CACHE: dict[tuple, Any] = {}


def names() -> list[str]:
    return list(specs())


def spec(name: str) -> DatasetSpec:
    """The catalog entry of `name` (its facts, statistics and file layout)."""
    known = specs()
    if name not in known:
        raise UserError(f"unknown dataset {name!r}: choose one of {', '.join(known)}")
    return known[name]


def info(name: str) -> DatasetInfo:
    """Static facts about a dataset (the full dataset, whatever is on disk)."""
    return spec(name).info


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
    name, entry = h.dataset_name, spec(h.dataset_name)
    _check(h, num_workers)
    root, device = Path(root).expanduser().resolve(), torch.device(device)
    seed = h.transformation_seed
    augment = train and not h.do_not_augment
    if not isinstance(entry.files, ImageFolders):
        cpu = _cached((name, train, root), lambda: entry.files.read_split(name, train, root, download))
        images, labels = _cached((name, train, root, str(device)), lambda: (cpu[0].to(device), cpu[1].to(device)))
        if train and h.subsample_fraction is not None:
            kept = subsample_indices(images.shape[0], h.subsample_fraction, seed).to(device)
            images, labels = images.index_select(0, kept), labels.index_select(0, kept)
        if train and h.random_labels_fraction is not None:
            labels = randomize_labels(labels, h.random_labels_fraction, entry.num_classes, seed)
        return InMemoryLoader(
            images, labels, num_classes=entry.num_classes, batch_size=h.batch_size, mean=entry.mean,
            std=entry.std, transformation_seed=seed, augment_padding=entry.pad_crop if augment else None,
        )

    samples, classes = _cached((name, train, root), lambda: entry.files.list_samples(name, train, root))
    if train and h.subsample_fraction is not None:
        samples = [samples[i] for i in subsample_indices(len(samples), h.subsample_fraction, seed).tolist()]
    if train and h.random_labels_fraction is not None:
        labels = torch.tensor([label for _, label in samples])
        labels = randomize_labels(labels, h.random_labels_fraction, len(classes), seed).tolist()
        samples = [(path, label) for (path, _), label in zip(samples, labels)]
    return FolderLoader(
        samples, num_classes=len(classes), batch_size=h.batch_size,
        transform=entry.files.transform(augment, entry.mean, entry.std),
        plain_transform=entry.files.transform(False, entry.mean, entry.std),
        augment=augment, transformation_seed=seed, device=device, num_workers=num_workers,
    )
