"""The members' batches of one step as one (N, B, ...) tensor: each member's own data order and
augmentation, cut from one copy of the dataset.

Where every member's training loader is an InMemoryLoader over the same image (or row) tensor, a
step is one gather of N x B rows (each member's order for this epoch, stacked) and one
augmentation and normalization of them all; the values are those each member's own loader yields
(the same order and augmentation parameters, drawn from the same seeds, the same per-example
arithmetic). Otherwise each member's loader yields its batch and they are stacked.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch

from datasets.augment import draw_pad_crop_flip, pad_crop_flip
from datasets.memory_loader import InMemoryLoader
from datasets.seeds import epoch_order
from datasets.shards import Shard
from foundations.bundles import FIXED_ORDER


def shares_one_copy(loaders: Sequence) -> bool:
    """Whether the fast path applies: in-memory loaders over the very same tensors, unsharded,
    with the same augmentation and normalization (each may have its own transformation seed)."""
    first = loaders[0]
    if not all(type(loader) is InMemoryLoader for loader in loaders):
        return False
    return all(loader.images is first.images and loader.labels is first.labels and loader.shard == Shard()
               and loader.augment_padding == first.augment_padding and loader.pixel_scale == first.pixel_scale
               and loader._is_images == first._is_images and loader.stored_order == first.stored_order
               and (not first._is_images or (torch.equal(loader._mean, first._mean)
                                             and torch.equal(loader._std, first._std)))
               for loader in loaders)


class StackedBatches:
    """`epoch(ep, start, order_seeds)` iterates the stacked batches start..len-1 of epoch `ep`."""

    def __init__(self, loaders: Sequence):
        self.loaders = list(loaders)
        self.shared = shares_one_copy(self.loaders)

    def epoch(self, epoch: int, start: int, order_seeds: Sequence[int]) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        if not self.shared:
            return self._stacked(epoch, start, order_seeds)
        return self._gathered(epoch, start, order_seeds)

    def _stacked(self, epoch, start, order_seeds):
        iterators = [loader.batches(epoch, start=start, order_seed=seed)
                     for loader, seed in zip(self.loaders, order_seeds)]
        for parts in zip(*iterators):
            yield torch.stack([x for x, _ in parts]), torch.stack([y for _, y in parts])

    def _order(self, loader: InMemoryLoader, seed, epoch: int) -> torch.Tensor:
        """What InMemoryLoader.batches takes its rows in (dataset order where it would not shuffle)."""
        order = None if loader.stored_order and seed == FIXED_ORDER else epoch_order(loader.num_examples, seed, epoch)
        return torch.arange(loader.num_examples) if order is None else order

    def _gathered(self, epoch, start, order_seeds):
        first = self.loaders[0]
        n, members, batch = first.num_examples, len(self.loaders), first.batch_size
        if not 0 <= start <= len(first):
            raise ValueError(f"start={start} is outside [0, {len(first)}]")
        orders = torch.stack([self._order(loader, seed, epoch)
                              for loader, seed in zip(self.loaders, order_seeds)]).to(first.device)
        params = None
        if first.augment_padding is not None:
            params = torch.stack([draw_pad_crop_flip(n, first.augment_padding, loader.transformation_seed, "augment",
                                                     epoch) for loader in self.loaders]).to(first.device)
        for index in range(start, len(first)):
            lo, hi = index * batch, min((index + 1) * batch, n)
            rows = orders[:, lo:hi].reshape(-1)
            x, y = first.images.index_select(0, rows), first.labels.index_select(0, rows)
            if params is not None:
                x = pad_crop_flip(x, params[:, lo:hi].reshape(-1, params.shape[-1]), first.augment_padding)
            x = first.normalize(x)
            yield x.view(members, hi - lo, *x.shape[1:]), y.view(members, hi - lo, *y.shape[1:])
