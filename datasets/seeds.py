"""Seeds for the data pipeline, derived from a few integers and labels only.

Every random choice the loaders make (training order, augmentation, subsets, random labels) draws
from a CPU `torch.Generator` seeded here, so it depends on nothing but its named inputs: not on the
device, the number of workers, or how many batches were consumed before.
"""

import torch

from foundations.seeds import digest_seed


def generator(*parts: int | str) -> torch.Generator:
    """A CPU generator seeded by `digest_seed(*parts)`."""
    return torch.Generator().manual_seed(digest_seed(*parts))


def epoch_order(num_examples: int, order_seed: int | None, epoch: int) -> torch.Tensor | None:
    """The example order of one epoch: None for dataset order, else a permutation of (order_seed, epoch)."""
    if order_seed is None:
        return None
    return torch.randperm(num_examples, generator=generator(order_seed, "order", epoch))
