"""Seeds for the data pipeline, derived from a few integers and labels only.

Every random choice the loaders make (training order, augmentation, subsets, random labels) draws
from a CPU `torch.Generator` seeded here, so it depends on nothing but its named inputs: not on the
device, the number of workers, or how many batches were consumed before.
"""

import torch

from foundations.bundles import FIXED_ORDER  # --data_order=fixed: one shuffle, the same every epoch
from foundations.seeds import digest_seed


def generator(*parts: int | str) -> torch.Generator:
    """A CPU generator seeded by `digest_seed(*parts)`."""
    return torch.Generator().manual_seed(digest_seed(*parts))




FIXED_ORDER_SEED = 42  # the LEGCNet authors' np.random.seed(42) shuffle of their table


def fixed_order(num_examples: int) -> torch.Tensor:
    """--data_order=fixed: one shuffle of the split, the same every epoch and every replicate, as
    the LEGCNet authors shuffled their table once (numpy's legacy RandomState(42), whose
    `permutation` is the order its `shuffle` leaves rows in) and then looped over it in order."""
    import numpy as np

    return torch.from_numpy(np.random.RandomState(FIXED_ORDER_SEED).permutation(num_examples))


def epoch_order(num_examples: int, order_seed: int | None, epoch: int) -> torch.Tensor | None:
    """The example order of one epoch: None for dataset order, the one fixed shuffle for
    FIXED_ORDER, else a permutation of (order_seed, epoch)."""
    if order_seed is None:
        return None
    if order_seed == FIXED_ORDER:
        return fixed_order(num_examples)
    return torch.randperm(num_examples, generator=generator(order_seed, "order", epoch))
