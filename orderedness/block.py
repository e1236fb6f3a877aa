"""The square block of a complete layer, split into the part a hidden order can change and the rest.

Every measure here (exact, heuristic, brute force) reads the block the same way: magnitudes
A = |block| of shape (B, N, N), N = O + H, with the O output units fixed first in their own order
and only the H hidden units permuted. Rows and columns are permuted together, and the backward
mass of an order is the sum of A over the strictly lower triangle once A is put in that order.

Two kinds of terms never depend on the hidden order: output-output pairs (fixed order) and every
hidden row's output columns (a hidden unit always sits after every output), so they are summed
once here. The diagonal (self-loops) never counts as backward, only in the total.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from foundations.errors import UserError
from orderedness.result import OrderednessResult


@dataclass(frozen=True)
class Block:
    """A batch of blocks ready to be ordered (B = the flattened leading dims)."""

    batch_shape: torch.Size
    num_outputs: int
    magnitudes: torch.Tensor      # (B, N, N): |block|, all zeros where undefined
    fixed_backward: torch.Tensor  # (B,): backward mass that no hidden order changes
    total: torch.Tensor           # (B,): sum of all magnitudes, diagonal included
    diagonal: torch.Tensor        # (B,): self-loop mass
    undefined: torch.Tensor       # (B,) bool: total is zero or not finite

    @property
    def num_hidden(self) -> int:
        return self.magnitudes.shape[-1] - self.num_outputs

    @property
    def hidden(self) -> torch.Tensor:
        """(B, H, H): hidden-to-hidden magnitudes, A[b, i, j] = weight from unit j into unit i."""
        o = self.num_outputs
        return self.magnitudes[:, o:, o:]


def prepare(block: torch.Tensor, num_outputs: int, dtype: torch.dtype = torch.float64) -> Block:
    """Check the shapes, take magnitudes in `dtype` and sum the order-independent terms."""
    if not isinstance(block, torch.Tensor) or block.dim() < 2 or block.shape[-1] != block.shape[-2]:
        shape = tuple(block.shape) if isinstance(block, torch.Tensor) else type(block).__name__
        raise UserError(f"orderedness needs square blocks of shape (..., N, N), got {shape}: "
                        "cut the block W[:, :H+O] out of the layer's weight first")
    if block.is_complex():
        raise UserError("orderedness needs real-valued blocks, got a complex tensor")
    n = block.shape[-1]
    if isinstance(num_outputs, bool) or not isinstance(num_outputs, int) or not 0 <= num_outputs <= n:
        raise UserError(f"num_outputs={num_outputs!r} must be an integer in [0, {n}] for {n}x{n} blocks")
    magnitudes = block.detach().to(dtype).abs().reshape(-1, n, n)
    total = magnitudes.sum(dim=(1, 2))
    undefined = ~(torch.isfinite(total) & (total > 0))
    magnitudes = torch.where(undefined[:, None, None], torch.zeros((), dtype=dtype, device=block.device),
                             magnitudes)
    total = torch.where(undefined, torch.zeros_like(total), total)
    o = num_outputs
    fixed = torch.tril(magnitudes[:, :o, :o], diagonal=-1).sum(dim=(1, 2)) + magnitudes[:, o:, :o].sum(dim=(1, 2))
    diagonal = torch.diagonal(magnitudes, dim1=1, dim2=2).sum(dim=1)
    return Block(block.shape[:-2], o, magnitudes, fixed, total, diagonal, undefined)


def permute(block: torch.Tensor, permutation: torch.Tensor) -> torch.Tensor:
    """`block` with rows and columns both put in `permutation`'s order: out[..., i, j] =
    block[..., p[i], p[j]], for blocks (..., N, N) and permutations (..., N)."""
    n = block.shape[-1]
    index = permutation.to(device=block.device, dtype=torch.long)
    batch = torch.broadcast_shapes(block.shape[:-2], index.shape[:-1])
    block = block.expand(*batch, n, n)
    index = index.expand(*batch, n)
    rows = torch.gather(block, -2, index.unsqueeze(-1).expand(*batch, n, n))
    return torch.gather(rows, -1, index.unsqueeze(-2).expand(*batch, n, n))


def finish(block: Block, hidden_order: torch.Tensor, exact: bool,
           hidden_lower_bound: torch.Tensor | None = None) -> OrderednessResult:
    """Score the full order (outputs, then `hidden_order` (B, H) of hidden indices 0..H-1).

    The backward mass is recomputed from the permuted block, so every method reports the
    orderedness of the permutation it returns, by one formula. Without a lower bound the result
    is exact and its gap is 0; with one, the gap is (backward - lower bound) / total.
    """
    o, device = block.num_outputs, block.magnitudes.device
    batch = block.magnitudes.shape[0]
    outputs = torch.arange(o, device=device).expand(batch, o)
    order = torch.cat([outputs, hidden_order.to(device=device, dtype=torch.long) + o], dim=1)
    backward = torch.tril(permute(block.magnitudes, order), diagonal=-1).sum(dim=(1, 2))
    nan = torch.full_like(backward, float("nan"))
    score = torch.where(block.undefined, nan, 1 - backward / torch.where(block.undefined, 1, block.total))
    if hidden_lower_bound is None:
        gap = torch.zeros_like(backward)
    else:
        lower = block.fixed_backward + hidden_lower_bound
        gap = ((backward - lower) / torch.where(block.undefined, 1, block.total)).clamp_min(0)
    gap = torch.where(block.undefined, nan, gap)
    shape = block.batch_shape
    return OrderednessResult(
        orderedness=score.reshape(shape), permutation=order.reshape(*shape, -1),
        backward_mass=backward.reshape(shape), total_mass=block.total.reshape(shape),
        diagonal_mass=block.diagonal.reshape(shape), undefined=block.undefined.reshape(shape),
        exact=exact, gap=gap.reshape(shape))
