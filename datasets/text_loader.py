"""Windows of a token tensor held whole on the device, for language modelling.

Training batches are `batch_size` windows of `context` tokens at random starts in the split: the
starts of batch `index` of `epoch` are drawn from (order_seed, "windows", epoch, index) alone, so
any step's batch is a pure function of the seed and the step and a resumed run sees the same
batches. An "epoch" is as many windows as the split has whole non-overlapping windows (rounded down
to whole batches, at least one batch). Evaluation walks the split in fixed non-overlapping windows
(a last partial window is dropped), `batch_size` windows a batch.

x is (N, context) int64 tokens, y the same windows shifted by one token (the next tokens).
"""

from __future__ import annotations

import copy
from collections.abc import Iterator

import torch

from datasets.seeds import generator
from datasets.shards import Shard
from foundations.bundles import FIXED_ORDER
from foundations.errors import UserError


def window_starts(num_tokens: int, context: int, count: int, *seed_parts: int | str) -> torch.Tensor:
    """`count` window starts in [0, num_tokens - context - 1], drawn from the seed parts alone."""
    high = num_tokens - context  # a window and its next-token targets need context + 1 tokens
    return torch.randint(0, high, (count,), generator=generator(*seed_parts))


class TextLoader:
    """A loader over one split of a token corpus (see the module docstring)."""

    task = "language_modeling"

    def __init__(self, tokens: torch.Tensor, *, context: int, batch_size: int, vocabulary: int,
                 train: bool, transformation_seed: int) -> None:
        if tokens.ndim != 1 or context < 1:
            raise ValueError("expected a 1-d token tensor and a positive context")
        if tokens.numel() < context + 1:
            raise UserError(f"the split has {tokens.numel()} tokens, too few for one window of --context_length="
                            f"{context}: lower --context_length")
        self.tokens, self.context, self.batch_size = tokens, context, batch_size
        self.num_classes, self.train = vocabulary, train
        self.transformation_seed = transformation_seed
        self.shard = Shard()
        windows = (tokens.numel() - 1) // context
        self.num_examples = max(1, windows // batch_size) * batch_size if train else windows
        self._offsets = torch.arange(context, device=tokens.device)

    @property
    def device(self) -> torch.device:
        return self.tokens.device

    def __len__(self) -> int:
        return -(-self.num_examples // self.batch_size)

    def sharded(self, rank: int, world_size: int, whole_batches: bool = False) -> "TextLoader":
        part = copy.copy(self)
        part.shard = Shard(rank, world_size, whole_batches)
        return part

    def starts(self, epoch: int, index: int, order_seed: int | None) -> torch.Tensor:
        """The window starts of one batch: training draws them from (seed, epoch, index); evaluation
        takes the fixed windows index*batch_size, ... (in units of `context`)."""
        lo, hi = index * self.batch_size, min((index + 1) * self.batch_size, self.num_examples)
        if not self.train:
            return torch.arange(lo, hi) * self.context
        seed = self.transformation_seed if order_seed is None else order_seed
        epoch = 0 if order_seed == FIXED_ORDER else epoch  # fixed: the same windows every epoch
        return window_starts(self.tokens.numel(), self.context, hi - lo, seed, "windows", epoch, index)

    def batches(self, epoch: int, start: int = 0, order_seed: int | None = None
                ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        if not 0 <= start <= len(self):
            raise ValueError(f"start={start} is outside [0, {len(self)}]")
        for index in range(start, len(self)):
            if not self.shard.takes(index):
                continue
            starts = self.starts(epoch, index, order_seed)
            a, b = self.shard.bounds(0, starts.numel())
            positions = starts[a:b].to(self.device)[:, None] + self._offsets
            yield self.tokens[positions].long(), self.tokens[positions + 1].long()

    def examples_per_class(self, n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        """What snipN/graspN/graspabsN read on a corpus, which has no classes to draw from: N
        next-token predictions per vocabulary entry on average, i.e. ceil(N * vocabulary / context)
        windows at starts drawn from (seed, "scoring windows") alone, as (inputs, next tokens).
        The count scales like N examples per class of a classifier (N * classes targets); the
        byte frequencies themselves are left as the text has them (no per-class balancing)."""
        count = -(-n * self.num_classes // self.context)
        starts = window_starts(self.tokens.numel(), self.context, count, seed, "scoring windows")
        positions = starts.to(self.device)[:, None] + self._offsets
        return self.tokens[positions].long(), self.tokens[positions + 1].long()
