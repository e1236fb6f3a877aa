"""Small tables held in memory: synthetic tasks (xor, sine) and scikit-learn's bundled tables
(iris, wine, breast cancer). No files and no download: `make()` builds every row.

A `TensorTable` either splits its rows into train and test (seeded, stratified by class, with
`test_fraction`) or, for the synthetic tasks of papers that had no held-out data, evaluates on
the training rows themselves (`test_fraction=None`: the "test" split is the training set, and
metrics named test_* are training-set metrics). Features can be standardized with statistics of
the training rows only.
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


@dataclass(frozen=True)
class TensorTable:
    """make: () -> (features float (N, D), targets: int64 (N,) labels or float (N, O) values).
    test_fraction: held-out share of the rows (stratified by class), or None to evaluate on the
        training rows (synthetic tasks).
    split_seed: fixes the train/test split: it is part of the dataset, the same for every run.
    standardize: subtract the training rows' mean and divide by their std, per feature."""

    make: Callable[[], tuple[torch.Tensor, torch.Tensor]]
    test_fraction: Optional[float] = None
    split_seed: int = 0
    standardize: bool = False

    def read_split(self, name: str, train: bool, root: Path, download: bool = False, *,
                   standardize: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """standardize=False keeps the raw features of a table that otherwise standardizes."""
        x, y = self.make()
        x = x.to(torch.float32)
        train_rows = test_rows = torch.arange(x.shape[0])
        if self.test_fraction is not None:
            train_rows, test_rows = stratified_split(y, self.test_fraction, self.split_seed)
        if self.standardize and standardize:
            reference = x[train_rows]
            std = reference.std(dim=0, unbiased=False)
            x = (x - reference.mean(dim=0)) / torch.where(std > 0, std, torch.ones_like(std))
        rows = train_rows if train else test_rows
        return x[rows].contiguous(), y[rows].contiguous()
