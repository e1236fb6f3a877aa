"""Seeds for the data pipeline, derived from a few integers and labels only.

Every random choice the loaders make (training order, augmentation, subsets, random labels) draws
from a CPU `torch.Generator` seeded here, so it depends on nothing but its named inputs: not on the
device, the number of workers, or how many batches were consumed before.
"""

import hashlib

import torch


def derive_seed(*parts: int | str) -> int:
    """A 63-bit seed that is a stable digest of `parts` (same parts → same seed on every machine)."""
    digest = hashlib.blake2b(repr(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


def generator(*parts: int | str) -> torch.Generator:
    """A CPU generator seeded by `derive_seed(*parts)`."""
    return torch.Generator().manual_seed(derive_seed(*parts))


def epoch_order(num_examples: int, order_seed: int | None, epoch: int) -> torch.Tensor | None:
    """The example order of one epoch: None for dataset order, else a permutation of (order_seed, epoch)."""
    if order_seed is None:
        return None
    return torch.randperm(num_examples, generator=generator(order_seed, "order", epoch))
