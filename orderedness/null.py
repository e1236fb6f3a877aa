"""The shuffled-entries null: the same weights, placed at random within the block.

A block keeps its magnitudes, signs and sparsity but loses any arrangement, so its orderedness
is what those weights give by chance; pruning is said to increase orderedness only against it.
"""

from __future__ import annotations

import torch

from foundations.errors import UserError


def shuffled_entries(block: torch.Tensor, seed: int, keep_diagonal: bool = False) -> torch.Tensor:
    """A copy of `block` (..., N, N) with each matrix's entries permuted uniformly at random.

    Every matrix gets its own permutation; all of them come from one CPU generator seeded with
    `seed`, so the result is the same on every device. With `keep_diagonal` the self-loops stay
    where they are and only the off-diagonal entries move.
    """
    if not isinstance(block, torch.Tensor) or block.dim() < 2 or block.shape[-1] != block.shape[-2]:
        shape = tuple(block.shape) if isinstance(block, torch.Tensor) else type(block).__name__
        raise UserError(f"shuffled_entries needs square blocks of shape (..., N, N), got {shape}")
    n = block.shape[-1]
    flat = block.detach().reshape(-1, n * n)
    cells = torch.arange(n * n)
    if keep_diagonal:
        cells = cells[cells % (n + 1) != 0]
    generator = torch.Generator().manual_seed(int(seed))
    shuffle = torch.argsort(torch.rand(flat.shape[0], len(cells), generator=generator), dim=1)
    cells, shuffle = cells.to(block.device), shuffle.to(block.device)
    out = flat.clone()
    out[:, cells] = torch.gather(flat[:, cells], 1, shuffle)
    return out.reshape(block.shape)
