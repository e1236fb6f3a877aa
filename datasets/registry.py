"""The datasets open_prune knows, and loaders built from `DatasetHparams`.

    names()                          every dataset, found in datasets/catalog/ (one module each)
    info(name)                       facts only, reads no files
    get(hparams, train, root=..., device=...)   a loader over one split

A dataset is an entry of the registry convention (foundations/registry.py): a module in
datasets/catalog/ that assigns, at its top level,

    NAME = "mnist"                   what --dataset_name takes
    SUMMARY = "MNIST: ..."           one line for listings
    SPEC = DatasetSpec(name=NAME, ...)   its facts, statistics and file layout (see datasets/spec.py)

Nothing lists them, so adding a dataset is adding one file; modules without a NAME (and those whose
names start with `_`, e.g. catalog/_sklearn.py) are helpers. `refresh()` looks at the catalog again.

Files are read once per process: splits are cached by (name, split, root) and, for in-memory sets,
their device copies by device as well. `clear_cache()` forgets them.
"""

import dataclasses
from collections.abc import Mapping
from functools import partial
from pathlib import Path
from types import MappingProxyType
from typing import Any, Callable

import torch

from datasets.folder_format import ImageFolders
from datasets.loader import Loader
from datasets.memory_loader import InMemoryLoader
from datasets.seeds import generator
from datasets.selection import randomize_labels, subsample_indices
from datasets.spec import DatasetInfo, DatasetSpec
from datasets.table_format import TensorTable, stratified_split
from datasets.text_format import TextCorpus
from datasets.text_loader import TextLoader
from foundations.errors import UserError
from foundations.registry import Registry
from foundations.seeds import digest_seed

__all__ = ["DATASETS", "DatasetInfo", "DatasetSpec", "clear_cache", "get", "info", "names", "refresh", "spec",
           "specs"]

DATASETS = Registry("datasets.catalog", kind="dataset", attribute="SPEC",
                    expected=lambda spec: isinstance(spec, DatasetSpec), expected_as="a DatasetSpec")


def _load(name: str) -> DatasetSpec:
    """The SPEC of the catalog entry `name` (imports that module alone), checked against its NAME."""
    entry = DATASETS.get(name)
    if entry.name != name:
        raise ValueError(f"{DATASETS.entry(name).module} declares NAME {name!r} but SPEC.name {entry.name!r}: "
                         "build the spec with name=NAME")
    return entry


def specs() -> Mapping[str, DatasetSpec]:
    """Every catalog entry by name, in rank order (ties by name); imports every catalog module."""
    found = {name: _load(name) for name in DATASETS.names()}
    return MappingProxyType(dict(sorted(found.items(), key=lambda item: (item[1].rank, item[0]))))


def refresh() -> None:
    """Look at the catalog folders again (after a module was added to or removed from one)."""
    DATASETS.refresh()


_CACHE: dict[tuple, Any] = {}


def names() -> list[str]:
    return list(specs())


def spec(name: str) -> DatasetSpec:
    """The catalog entry of `name` (its facts, statistics and file layout)."""
    if name not in DATASETS.entries:
        raise UserError(f"unknown dataset {name!r}: choose one of {', '.join(specs())}")
    return _load(name)


def info(name: str) -> DatasetInfo:
    """Static facts about a dataset (the full dataset, whatever is on disk)."""
    return spec(name).info


def info_of(dataset_hparams: Any) -> DatasetInfo:
    """The facts of the dataset a run reads: `info`, with a text corpus's vocabulary that of its
    --tokenizer when it has one (so the model's output layer fits the tokens)."""
    facts = info(dataset_hparams.dataset_name)
    tokenizer = getattr(dataset_hparams, "tokenizer", None)
    if tokenizer is None:
        return facts
    if facts.task != "language_modeling":
        raise UserError(f"--tokenizer is for text corpora; {facts.name} is not one: drop the flag")
    from datasets.tokenized_text import vocabulary_size
    return dataclasses.replace(facts, num_classes=vocabulary_size(str(tokenizer)))


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


SPLITS = ("train", "val", "test")


def _split_name(split: bool | str) -> str:
    """True/False (the training/test split) or one of SPLITS."""
    if isinstance(split, bool):
        return "train" if split else "test"
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
    return split


def _validation_rows(labels: torch.Tensor, h: Any, task: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(training rows, validation rows) of the training split: a seeded hold-out of
    validation_fraction, stratified by class for classification."""
    labels = labels.cpu()
    if task == "classification":
        return stratified_split(labels, h.validation_fraction, digest_seed(h.transformation_seed, "validation"))
    count = round(h.validation_fraction * labels.shape[0])
    order = torch.randperm(labels.shape[0], generator=generator(h.transformation_seed, "validation"))
    return order[count:].sort().values, order[:count].sort().values


IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def input_statistics(entry: DatasetSpec, normalization: str) -> tuple[tuple, tuple, float]:
    """(mean, std, pixel_scale) of an image dataset under --input_normalization: inputs are
    (pixels / pixel_scale - mean) / std."""
    channels = entry.input_shape[0]
    if normalization == "dataset":
        return entry.mean, entry.std, 255.0
    if normalization == "imagenet":
        if channels != 3:
            raise UserError(f"--input_normalization=imagenet needs colour images; {entry.name} has {channels} "
                            "channel(s): use dataset, unit or raw")
        return IMAGENET_MEAN, IMAGENET_STD, 255.0
    return (0.0,) * channels, (1.0,) * channels, 255.0 if normalization == "unit" else 1.0


LEGCNET_SPLIT_SEED = 42  # Helper.py `iris`: np.random.seed(42); np.random.shuffle(data)


def _split_table(table: TensorTable, split: str, name: str) -> TensorTable:
    """The table under --table_split: as declared, or the LEGCNet authors' split of its rows."""
    if split == "stratified":
        return table
    if table.test_fraction is None:
        raise UserError(f"--table_split={split} splits a table into train and test; {name} has no test split")
    return dataclasses.replace(table, split="shuffled", split_seed=LEGCNET_SPLIT_SEED, test_statistics="own")


def _text_loader(h: Any, entry: DatasetSpec, split: str, root: Path, device: torch.device) -> TextLoader:
    """A corpus's split by position (datasets/text_format.py); the per-example options refuse."""
    for flag in ("subsample_fraction", "random_labels_fraction", "validation_fraction"):
        if getattr(h, flag, None) is not None:
            raise UserError(f"--{flag} is not defined for the text corpus {entry.name} (its train/validation/test "
                            "split is fixed by position): drop the flag")
    for flag, default in (("input_normalization", "dataset"), ("table_split", "stratified")):
        if getattr(h, flag, default) != default:
            raise UserError(f"--{flag} is not defined for the text corpus {entry.name}: drop the flag")
    tokenizer = getattr(h, "tokenizer", None)
    if tokenizer is None:
        cpu = _cached((entry.name, split, root, "text"), lambda: entry.files.read_split(root, split))
    else:
        from datasets.tokenized_text import tokenized_split
        cpu = _cached((entry.name, split, root, "text", h.tokenizer_digest),
                      lambda: tokenized_split(entry.files, root, split, tokenizer)[0])
    tokens = _cached((entry.name, split, root, "text", h.tokenizer_digest if tokenizer else None, str(device)),
                     lambda: cpu.to(device))
    context = getattr(h, "context_length", None) or entry.input_shape[0]
    return TextLoader(tokens, context=context, batch_size=h.batch_size, vocabulary=info_of(h).num_classes,
                      train=split == "train", transformation_seed=h.transformation_seed or 0)


def get(
    dataset_hparams: Any,
    train: bool | str,
    *,
    root: Path,
    device: torch.device | str,
    download: bool = False,
    num_workers: int = 0,
) -> Loader:
    """A loader over the training split (`train` True or "train"), the validation split ("val":
    held out of the training set by validation_fraction) or the test split (False or "test").

    The training split is subsampled first (subsample_fraction), then the validation rows are held
    out of what remains, then labels of the training rows are randomized (random_labels_fraction);
    all three are seeded by transformation_seed.
    """
    h = dataset_hparams
    validation = getattr(h, "validation_fraction", None)
    split = _split_name(train)
    name, entry = h.dataset_name, spec(h.dataset_name)
    _check(h, num_workers)
    if isinstance(entry.files, TextCorpus):
        return _text_loader(h, entry, split, Path(root).expanduser().resolve(), torch.device(device))
    if getattr(h, "context_length", None) is not None:
        raise UserError(f"--context_length is for text corpora; {name} is not one: drop the flag")
    if split == "val" and validation is None:
        raise UserError("there is no validation split: add --validation_fraction (e.g. 0.1) to hold one out")
    from_train = split != "test"
    root, device = Path(root).expanduser().resolve(), torch.device(device)
    seed = h.transformation_seed
    augment = split == "train" and not h.do_not_augment
    normalization = getattr(h, "input_normalization", "dataset")
    if isinstance(entry.files, TensorTable):
        if normalization not in ("dataset", "raw"):
            raise UserError(f"--input_normalization={normalization} is for images; {name} is a table: use dataset "
                            "(standardized features) or raw")
        mean, std, pixel_scale = entry.mean, entry.std, 255.0
        table = _split_table(entry.files, getattr(h, "table_split", "stratified"), name)
        read = partial(table.read_split, standardize=normalization == "dataset")
    elif getattr(h, "table_split", "stratified") != "stratified":
        raise UserError(f"--table_split is for tables; {name} is not one: drop the flag")
    else:
        mean, std, pixel_scale = input_statistics(entry, normalization)
        read = getattr(entry.files, "read_split", None)
    if not isinstance(entry.files, ImageFolders):
        table_key = isinstance(entry.files, TensorTable) and (normalization, getattr(h, "table_split", "stratified"))
        cpu = _cached((name, from_train, root, table_key), lambda: read(name, from_train, root, download))
        images, labels = _cached((name, from_train, root, table_key, str(device)),
                                 lambda: (cpu[0].to(device), cpu[1].to(device)))
        if from_train and h.subsample_fraction is not None:
            kept = subsample_indices(images.shape[0], h.subsample_fraction, seed).to(device)
            images, labels = images.index_select(0, kept), labels.index_select(0, kept)
        if from_train and validation is not None:
            rows = _validation_rows(labels, h, entry.task)[0 if split == "train" else 1].to(device)
            images, labels = images.index_select(0, rows), labels.index_select(0, rows)
        if split == "train" and h.random_labels_fraction is not None:
            labels = randomize_labels(labels, h.random_labels_fraction, entry.num_classes, seed)
        return InMemoryLoader(
            images, labels, num_classes=entry.num_classes, batch_size=h.batch_size, mean=mean,
            std=std, transformation_seed=seed, augment_padding=entry.pad_crop if augment else None,
            task=entry.task, pixel_scale=pixel_scale,
            stored_order=getattr(h, "table_split", "stratified") == "legcnet",
        )

    samples, classes = _cached((name, from_train, root), lambda: entry.files.list_samples(name, from_train, root))
    if from_train and h.subsample_fraction is not None:
        samples = [samples[i] for i in subsample_indices(len(samples), h.subsample_fraction, seed).tolist()]
    if from_train and validation is not None:
        rows = _validation_rows(torch.tensor([label for _, label in samples]), h, entry.task)
        samples = [samples[i] for i in rows[0 if split == "train" else 1].tolist()]
    if split == "train" and h.random_labels_fraction is not None:
        labels = torch.tensor([label for _, label in samples])
        labels = randomize_labels(labels, h.random_labels_fraction, len(classes), seed).tolist()
        samples = [(path, label) for (path, _), label in zip(samples, labels)]
    from datasets.folder_loader import FolderLoader  # torchvision: imported only for image folders
    return FolderLoader(
        samples, num_classes=len(classes), batch_size=h.batch_size,
        transform=entry.files.transform(augment, mean, std, pixel_scale),
        plain_transform=entry.files.transform(False, mean, std, pixel_scale),
        augment=augment, transformation_seed=seed, device=device, num_workers=num_workers,
    )
