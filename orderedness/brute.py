"""The reference: try every order of the hidden units (itertools), as the paper does.

Only for tests and benchmarks: H! orders. Each chunk of orders is scored against the whole batch
at once: order p puts unit i after unit j exactly when pos_p(i) > pos_p(j), so the backward mass
of every (order, matrix) pair is one matrix product of those 0/1 indicators with the flattened
blocks. Ties go to the first order in itertools' (lexicographic) sequence.
"""

from __future__ import annotations

import itertools

import numpy as np
import torch

from orderedness.block import finish, prepare
from orderedness.result import OrderednessResult

_ORDERS_PER_CHUNK = 1 << 15


def _chunks(h: int):
    """All orders of h >= 1 units, as (count, h) tensors in itertools' sequence."""
    orders = itertools.permutations(range(h))
    while True:
        flat = np.fromiter(itertools.chain.from_iterable(itertools.islice(orders, _ORDERS_PER_CHUNK)),
                           dtype=np.int64)
        if flat.size == 0:
            return
        yield torch.from_numpy(flat).view(-1, h)


def brute_force_orders(hidden_blocks: torch.Tensor) -> torch.Tensor:
    """(B, H, H) magnitudes -> (B, H): the first hidden order of least backward mass."""
    batch, h = hidden_blocks.shape[0], hidden_blocks.shape[-1]
    device, dtype = hidden_blocks.device, hidden_blocks.dtype
    flat_blocks = hidden_blocks.reshape(batch, h * h).T  # (H*H, B)
    best = torch.full((batch,), float("inf"), dtype=dtype, device=device)
    best_order = torch.zeros(batch, h, dtype=torch.long, device=device)
    if h == 0:
        return best_order
    for orders in _chunks(h):
        orders = orders.to(device)
        position = torch.argsort(orders, dim=1)  # position[p, unit]
        after = (position[:, :, None] > position[:, None, :]).to(dtype).view(len(orders), h * h)
        mass, index = (after @ flat_blocks).min(dim=0)  # (B,)
        better = mass < best
        best = torch.where(better, mass, best)
        best_order = torch.where(better[:, None], orders[index], best_order)
    return best_order


def brute_force_orderedness(block: torch.Tensor, num_outputs: int,
                            dtype: torch.dtype = torch.float64) -> OrderednessResult:
    """Exact orderedness of blocks (..., N, N) by enumerating all H! hidden orders."""
    prepared = prepare(block, num_outputs, dtype)
    return finish(prepared, brute_force_orders(prepared.hidden.contiguous()), exact=True)
