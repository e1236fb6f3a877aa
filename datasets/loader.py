"""The interface every dataset loader offers to training and pruning code."""

from collections.abc import Iterator
from typing import Protocol

import torch


class Loader(Protocol):
    num_examples: int
    batch_size: int
    num_classes: int  # the number of model outputs
    task: str  # "classification" (int64 labels) or "regression" (float targets)

    def __len__(self) -> int:
        """Iterations per epoch: ceil(num_examples / batch_size); the last batch may be smaller."""

    def batches(
        self, epoch: int, start: int = 0, order_seed: int | None = None
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """(x float32 (N, C, H, W) normalized, y int64 (N,)) on the device, for batches start..len-1 of `epoch`."""

    def examples_per_class(self, n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        """n seeded, unaugmented examples of each class, grouped by class, on the device."""
