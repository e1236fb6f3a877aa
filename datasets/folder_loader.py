"""A loader over image files decoded by DataLoader workers (ImageNet, Tiny ImageNet).

Each example is requested together with its own augmentation seed, drawn per position in the epoch
from (transformation_seed, epoch); the worker seeds the CPU generator with it just for that image.
So batch k of an epoch is the same whether the epoch started at 0 or resumed at k, and whatever the
number of workers.
"""

import copy
from collections.abc import Iterator

import torch
from torch.utils.data import DataLoader, Dataset
from torchvision.datasets.folder import default_loader
from torchvision.transforms import v2
from torchvision.transforms.v2.functional import pil_to_tensor

from datasets.seeds import epoch_order, generator
from datasets.selection import per_class_indices
from datasets.shards import Shard

_NO_SEED = -1


class SeededImages(Dataset):
    """Image files indexed by (example index, seed); a seed of -1 applies the transform unseeded."""

    def __init__(self, samples: list[tuple[str, int]], transform: v2.Transform) -> None:
        self.samples = samples
        self.transform = transform

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, item: tuple[int, int]) -> tuple[torch.Tensor, int]:
        index, seed = item
        path, label = self.samples[index]
        image = pil_to_tensor(default_loader(path))  # RGB uint8 (3, H, W), whatever the file's mode
        if seed == _NO_SEED:
            return self.transform(image), label
        with torch.random.fork_rng(devices=[]):  # leaves the caller's CPU generator untouched
            torch.default_generator.manual_seed(seed)
            return self.transform(image), label


class _EpochPlan:
    """Batch sampler: lists of (example index, seed) for batches start..end of one epoch (only
    the shard's share of them, so a rank decodes only its own examples)."""

    def __init__(self, order: torch.Tensor, seeds: torch.Tensor | None, batch_size: int, start: int,
                 shard: Shard = Shard()) -> None:
        self.order, self.seeds, self.batch_size, self.start, self.shard = order, seeds, batch_size, start, shard

    def _indices(self) -> range:
        return range(self.start, -(-self.order.numel() // self.batch_size))

    def __len__(self) -> int:
        return sum(1 for index in self._indices() if self.shard.takes(index))

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        for index in self._indices():
            if not self.shard.takes(index):
                continue
            lo, hi = self.shard.bounds(index * self.batch_size, min((index + 1) * self.batch_size, self.order.numel()))
            indices = self.order[lo:hi].tolist()
            seeds = self.seeds[lo:hi].tolist() if self.seeds is not None else [_NO_SEED] * len(indices)
            yield list(zip(indices, seeds))


class FolderLoader:
    """Batches of (normalized float32 images, int64 labels) decoded from files by `num_workers` workers."""

    def __init__(
        self,
        samples: list[tuple[str, int]],
        *,
        num_classes: int,
        batch_size: int,
        transform: v2.Transform,
        plain_transform: v2.Transform,
        augment: bool,
        transformation_seed: int,
        device: torch.device,
        num_workers: int = 0,
    ) -> None:
        self.samples = samples
        self.num_examples = len(samples)
        self.batch_size = batch_size
        self.num_classes = num_classes
        self.task = "classification"  # one folder per class
        self.augment = augment
        self.transformation_seed = transformation_seed
        self.device = torch.device(device)
        self.num_workers = num_workers
        self.shard = Shard()
        self._images = SeededImages(samples, transform)
        self._plain_images = SeededImages(samples, plain_transform)

    def __len__(self) -> int:
        return -(-self.num_examples // self.batch_size)

    def sharded(self, rank: int, world_size: int, whole_batches: bool = False) -> "FolderLoader":
        """The same batches, of which this loader decodes and yields only rank's share
        (datasets/shards.py)."""
        part = copy.copy(self)
        part.shard = Shard(rank, world_size, whole_batches)
        return part

    def _load(self, images: SeededImages, plan: _EpochPlan) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        pin = self.device.type == "cuda"
        # A private generator: DataLoader draws its workers' base seed from it instead of the global one.
        loader = DataLoader(images, batch_sampler=plan, num_workers=self.num_workers, pin_memory=pin,
                            generator=torch.Generator())
        for x, y in loader:
            yield x.to(self.device, non_blocking=pin), y.to(self.device, non_blocking=pin)

    def batches(
        self, epoch: int, start: int = 0, order_seed: int | None = None
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Batches start..len-1 of `epoch`; see the package docstring for the ordering and seeding rules."""
        if not 0 <= start <= len(self):
            raise ValueError(f"start={start} is outside [0, {len(self)}]")
        order = epoch_order(self.num_examples, order_seed, epoch)
        if order is None:
            order = torch.arange(self.num_examples)
        seeds = None
        if self.augment:
            rng = generator(self.transformation_seed, "augment", epoch)
            seeds = torch.randint(2**62, (self.num_examples,), generator=rng)
        return self._load(self._images, _EpochPlan(order, seeds, self.batch_size, start, self.shard))

    def examples_per_class(self, n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        """n seeded examples of every class, grouped by class, unaugmented and normalized, on the device."""
        labels = torch.tensor([label for _, label in self.samples])
        chosen = per_class_indices(labels, n, self.num_classes, seed)
        parts = list(self._load(self._plain_images, _EpochPlan(chosen, None, self.batch_size, 0)))
        return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])
