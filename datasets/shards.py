"""Splitting the data across the processes of a data-parallel run.

A sharded loader walks the same global batches as the whole loader (same order, same
augmentation, same `len()` and `num_examples`) and yields this rank's share of them:

  - for training (`whole_batches=False`), a contiguous slice of every batch: rank r of W gets
    positions [n*r//W, n*(r+1)//W) of a batch of n examples, so the union over the ranks is
    exactly the single-process batch whatever W, and a smaller last batch is split as evenly as
    it can be;
  - for evaluation (`whole_batches=True`), every W-th whole batch, starting at batch r: sums
    over a split need no lock-step, and no rank is left with a sliver of a batch.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Shard:
    rank: int = 0
    world_size: int = 1
    whole_batches: bool = False

    def __post_init__(self) -> None:
        if not 0 <= self.rank < self.world_size:
            raise ValueError(f"rank {self.rank} is outside a world of {self.world_size}")

    def takes(self, index: int) -> bool:
        """Whether this rank handles batch `index` at all."""
        return not self.whole_batches or index % self.world_size == self.rank

    def bounds(self, lo: int, hi: int) -> tuple[int, int]:
        """This rank's part [a, b) of the positions [lo, hi) of a batch it takes."""
        if self.whole_batches:
            return lo, hi
        n = hi - lo
        return lo + n * self.rank // self.world_size, lo + n * (self.rank + 1) // self.world_size
