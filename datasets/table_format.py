"""Small tables held in memory: synthetic tasks (xor, sine) and scikit-learn's bundled tables
(iris, wine, breast cancer). No files and no download: `make()` builds every row.

A `TensorTable` either splits its rows into train and test (seeded, stratified by class, with
`test_fraction`) or, for the synthetic tasks of papers that had no held-out data, evaluates on
the training rows themselves (`test_fraction=None`: the "test" split is the training set, and
metrics named test_* are training-set metrics). Features can be standardized with statistics of
the training rows only.

`split="shuffled"` is the LEGCNet authors' split instead (Helper.py `iris`: numpy's
`np.random.seed(42); np.random.shuffle(data)`, the first rows train, the rest test, not
stratified; the training rows stay in that shuffled order), and `test_statistics="own"` their
standardization, where the test rows are standardized with their own mean and std (a second
`StandardScaler().fit_transform`), not the training rows'.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import torch

from datasets.seeds import generator


def stratified_split(labels: torch.Tensor, fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(kept, held_out) sorted index tensors; round(fraction * class size) of every class (at
    least one when the class has two or more rows) is held out, chosen by `seed`."""
    held = []
    rng = generator(seed, "stratified_split")
    for label in labels.unique(sorted=True).tolist():
        members = (labels == label).nonzero().squeeze(1)
        count = round(fraction * members.numel())
        if members.numel() > 1:
            count = min(max(count, 1), members.numel() - 1)
        held.append(members[torch.randperm(members.numel(), generator=rng)[:count]])
    held_out = torch.cat(held).sort().values
    keep = torch.ones(labels.numel(), dtype=torch.bool)
    keep[held_out] = False
    return keep.nonzero().squeeze(1), held_out


SPLITS = ("stratified", "shuffled")
TEST_STATISTICS = ("train", "own")


def shuffled_split(num_rows: int, test_fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(train, test) index tensors of the LEGCNet authors' split: the rows in the order numpy's
    legacy `RandomState(seed).shuffle` leaves them (which is `RandomState(seed).permutation`), the
    first int((1 - test_fraction) * num_rows) for training, the rest for testing; both keep the
    shuffled order."""
    import numpy as np

    order = torch.from_numpy(np.random.RandomState(seed).permutation(num_rows))
    train = int((1 - test_fraction) * num_rows + 1e-9)
    return order[:train], order[train:]


def standardize_rows(x: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """(x - mean) / std per feature, with the reference rows' mean and population std (scikit-
    learn's StandardScaler; a constant feature is only centred)."""
    std = reference.std(dim=0, unbiased=False)
    return (x - reference.mean(dim=0)) / torch.where(std > 0, std, torch.ones_like(std))


@dataclass(frozen=True)
class TensorTable:
    """make: () -> (features float (N, D), targets: int64 (N,) labels or float (N, O) values).
    test_fraction: held-out share of the rows (stratified by class), or None to evaluate on the
        training rows (synthetic tasks).
    split_seed: fixes the train/test split: it is part of the dataset, the same for every run.
    standardize: subtract the training rows' mean and divide by their std, per feature.
    split: stratified (ours) | shuffled (the LEGCNet authors': `shuffled_split`).
    test_statistics: train (the test rows standardized with the training rows' statistics) |
        own (with their own: the LEGCNet authors')."""

    make: Callable[[], tuple[torch.Tensor, torch.Tensor]]
    test_fraction: Optional[float] = None
    split_seed: int = 0
    standardize: bool = False
    split: str = "stratified"
    test_statistics: str = "train"

    def __post_init__(self) -> None:
        if self.split not in SPLITS or self.test_statistics not in TEST_STATISTICS:
            raise ValueError(f"split must be one of {SPLITS} and test_statistics one of {TEST_STATISTICS}, got "
                             f"{self.split!r} and {self.test_statistics!r}")

    def read_split(self, name: str, train: bool, root: Path, download: bool = False, *,
                   standardize: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """standardize=False keeps the raw features of a table that otherwise standardizes."""
        x, y = self.make()
        x = x.to(torch.float32)
        train_rows = test_rows = torch.arange(x.shape[0])
        if self.test_fraction is not None and self.split == "shuffled":
            train_rows, test_rows = shuffled_split(x.shape[0], self.test_fraction, self.split_seed)
        elif self.test_fraction is not None:
            train_rows, test_rows = stratified_split(y, self.test_fraction, self.split_seed)
        rows = train_rows if train else test_rows
        features = x[rows]
        if self.standardize and standardize:
            own = not train and self.test_statistics == "own"
            features = standardize_rows(features, features if own else x[train_rows])
        return features.contiguous(), y[rows].contiguous()
