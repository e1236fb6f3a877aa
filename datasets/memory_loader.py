"""A loader over a dataset held whole on the device: uint8 images, or float rows of a table.

Batches are cut by indexing on the device, augmented there, and normalized there; an epoch costs one
small host-to-device copy (its order and augmentation parameters) and no host sync per batch.
"""

import copy
from collections.abc import Iterator

import torch

from datasets.augment import draw_pad_crop_flip, pad_crop_flip
from datasets.seeds import epoch_order
from datasets.selection import per_class_indices
from datasets.shards import Shard
from foundations.bundles import FIXED_ORDER
from foundations.errors import UserError


class InMemoryLoader:
    """Batches of (normalized float32 images, int64 labels) from uint8 images resident on a device,
    or of (float32 rows, targets) of a table (no normalization: tables arrive standardized).

    augment_padding: None for no augmentation, else pad-crop by that many pixels plus a random
    horizontal flip, seeded from (transformation_seed, epoch) and the batch's position in the epoch.
    task: "classification" (int64 labels) or "regression" (float targets (N, O)).
    """

    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        *,
        num_classes: int,
        batch_size: int,
        mean: tuple[float, ...],
        std: tuple[float, ...],
        transformation_seed: int,
        augment_padding: int | None = None,
        task: str = "classification",
        pixel_scale: float = 255.0,
        stored_order: bool = False,
    ) -> None:
        is_images = images.dtype == torch.uint8 and images.ndim == 4
        is_table = images.is_floating_point() and images.ndim == 2 and augment_padding is None
        if not (is_images or is_table) or labels.shape[:1] != images.shape[:1]:
            raise ValueError(f"expected uint8 (N, C, H, W) images or float (N, D) rows with N targets, "
                             f"got {images.dtype} {tuple(images.shape)} and {tuple(labels.shape)}")
        self.task = task
        self._is_images = is_images
        self.images = images
        self.labels = labels
        self.num_examples = images.shape[0]
        self.batch_size = batch_size
        self.num_classes = num_classes
        self.transformation_seed = transformation_seed
        self.augment_padding = augment_padding
        self.shard = Shard()
        self.pixel_scale = pixel_scale
        self.stored_order = stored_order  # its rows are already in a fixed order: --data_order=fixed keeps it
        if is_images:
            shape = (1, len(mean), 1, 1)
            self._mean = torch.tensor(mean, dtype=torch.float32, device=images.device).view(shape)
            self._std = torch.tensor(std, dtype=torch.float32, device=images.device).view(shape)

    @property
    def device(self) -> torch.device:
        return self.images.device

    def __len__(self) -> int:
        return -(-self.num_examples // self.batch_size)

    def sharded(self, rank: int, world_size: int, whole_batches: bool = False) -> "InMemoryLoader":
        """The same batches, of which this loader yields only rank's share (datasets/shards.py)."""
        part = copy.copy(self)
        part.shard = Shard(rank, world_size, whole_batches)
        return part

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 pixels → float32 (x / pixel_scale - mean) / std, per channel; table rows as they are."""
        if not self._is_images:
            return images
        return images.float().div_(self.pixel_scale).sub_(self._mean).div_(self._std)

    def batches(
        self, epoch: int, start: int = 0, order_seed: int | None = None
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Batches start..len-1 of `epoch`; see the package docstring for the ordering and seeding rules."""
        if not 0 <= start <= len(self):
            raise ValueError(f"start={start} is outside [0, {len(self)}]")
        order = None if self.stored_order and order_seed == FIXED_ORDER else epoch_order(
            self.num_examples, order_seed, epoch)
        if order is not None:
            order = order.to(self.device)
        params = None
        if self.augment_padding is not None:
            seed_parts = (self.transformation_seed, "augment", epoch)
            params = draw_pad_crop_flip(self.num_examples, self.augment_padding, *seed_parts).to(self.device)
        return self._iterate(start, order, params)

    def _iterate(
        self, start: int, order: torch.Tensor | None, params: torch.Tensor | None
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for index in range(start, len(self)):
            if not self.shard.takes(index):
                continue
            lo, hi = self.shard.bounds(index * self.batch_size, min((index + 1) * self.batch_size, self.num_examples))
            if order is None:
                x, y = self.images[lo:hi], self.labels[lo:hi]
            else:
                x, y = self.images.index_select(0, order[lo:hi]), self.labels.index_select(0, order[lo:hi])
            if params is not None:
                x = pad_crop_flip(x, params[lo:hi], self.augment_padding)
            yield self.normalize(x), y

    def examples_per_class(self, n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        """n seeded examples of every class, grouped by class, unaugmented and normalized, on the device."""
        if self.task != "classification":
            raise UserError("this score draws examples per class, but the dataset is a regression task")
        chosen = per_class_indices(self.labels, n, self.num_classes, seed).to(self.device)
        return self.normalize(self.images.index_select(0, chosen)), self.labels.index_select(0, chosen)
