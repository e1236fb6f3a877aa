"""Orderedness beyond the exact limit: a greedy order improved by insertion moves, with a bound.

Greedy (front to back): among the unplaced units R, place next the v whose placing-first cost
(sum over j in R of A[j, v], the rows that will come after it) most undercuts its placing-last
cost (sum over j in R of A[v, j]). This is the weighted form of Eades, Lin and Smyth's
feedback-arc-set rule.

Insertion search: move one unit from position p to position q if that lowers the backward mass,
the best such move per matrix per round, until no move helps. With P the block in the current
order and D = P - P^T, moving p later to q changes the mass by sum_{p<r<=q} D[p, r] and moving it
earlier by -sum_{q<=r<p} D[p, r]; one cumulative sum per row gives every move at once.

Lower bound: every hidden pair {i, j} puts one of a_ij, a_ji below the diagonal, so the mass is
at least sum over pairs of min(a_ij, a_ji) plus the order-independent terms. The result's gap is
the distance to that bound, an upper bound on how far below the optimum the reported value is.
"""

from __future__ import annotations

import torch

from orderedness.block import finish, permute, prepare
from orderedness.result import OrderednessResult

_RELATIVE_TOLERANCE = 1e-12  # a move must gain more than this fraction of the mass to count


def greedy_orders(hidden_blocks: torch.Tensor) -> torch.Tensor:
    """(B, H, H) magnitudes -> (B, H) greedy hidden orders."""
    batch, h = hidden_blocks.shape[0], hidden_blocks.shape[-1]
    first_cost = hidden_blocks.sum(dim=1)  # column sums: rows that would follow v
    last_cost = hidden_blocks.sum(dim=2)   # row sums: columns that would precede v
    placed = torch.zeros(batch, h, dtype=torch.bool, device=hidden_blocks.device)
    order = torch.empty(batch, h, dtype=torch.long, device=hidden_blocks.device)
    everyone = torch.arange(batch, device=hidden_blocks.device)
    for position in range(h):
        score = (first_cost - last_cost).masked_fill(placed, float("inf"))
        unit = score.argmin(dim=1)
        order[:, position] = unit
        placed[everyone, unit] = True
        first_cost -= hidden_blocks[everyone, unit, :]
        last_cost -= hidden_blocks[everyone, :, unit]
    return order


def _move_changes(permuted: torch.Tensor) -> torch.Tensor:
    """(B, H, H) block in the current order -> (B, H, H) change of backward mass for moving the
    unit at position p to position q (entry [b, p, q]; zero on the diagonal)."""
    difference = permuted - permuted.transpose(1, 2)
    prefix = torch.nn.functional.pad(difference.cumsum(dim=2), (1, 0))  # prefix[p, m] = sum_{r<m} D[p, r]
    h = permuted.shape[-1]
    positions = torch.arange(h, device=permuted.device)
    later = positions[None, :] > positions[:, None]  # q > p
    reach = torch.where(later, prefix[..., 1:], prefix[..., :-1])
    return reach - torch.diagonal(prefix[..., 1:], dim1=1, dim2=2).unsqueeze(2)


def _moved(order: torch.Tensor, source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Each row of `order` with the entry at `source` taken out and put back at `target`."""
    positions = torch.arange(order.shape[1], device=order.device)[None, :]
    p, q = source[:, None], target[:, None]
    inside = (positions >= torch.minimum(p, q)) & (positions <= torch.maximum(p, q))
    index = torch.where(inside & (q > p), positions + 1, positions)
    index = torch.where(inside & (q < p), positions - 1, index)
    index = torch.where(positions == q, p, index)
    return torch.gather(order, 1, index)


def insertion_search(hidden_blocks: torch.Tensor, order: torch.Tensor,
                     max_rounds: int | None = None) -> torch.Tensor:
    """Improve `order` (B, H) by best single-unit moves until none helps (or `max_rounds`,
    default H^2); each round moves one unit in every matrix that can still improve."""
    h = order.shape[1]
    if h < 2:
        return order
    tolerance = _RELATIVE_TOLERANCE * hidden_blocks.sum(dim=(1, 2))
    for _ in range(h * h if max_rounds is None else max_rounds):
        changes = _move_changes(permute(hidden_blocks, order)).flatten(1)
        best, where = changes.min(dim=1)
        improving = best < -tolerance
        if not bool(improving.any()):
            break
        source = torch.where(improving, where // h, 0)
        target = torch.where(improving, where % h, 0)
        order = _moved(order, source, target)
    return order


def pairwise_lower_bound(hidden_blocks: torch.Tensor) -> torch.Tensor:
    """(B, H, H) -> (B,): sum over hidden pairs i < j of min(a_ij, a_ji)."""
    smaller = torch.minimum(hidden_blocks, hidden_blocks.transpose(1, 2))
    return torch.triu(smaller, diagonal=1).sum(dim=(1, 2))


def heuristic_orderedness(block: torch.Tensor, num_outputs: int, max_rounds: int | None = None,
                          dtype: torch.dtype = torch.float64) -> OrderednessResult:
    """Greedy + insertion search for blocks (..., N, N) of any size, outputs fixed first.

    Not proven optimal (`exact` is False); `gap` bounds how far the reported orderedness can lie
    below the true one (a gap of 0 proves it optimal).
    """
    prepared = prepare(block, num_outputs, dtype)
    hidden = prepared.hidden.contiguous()
    order = insertion_search(hidden, greedy_orders(hidden), max_rounds)
    return finish(prepared, order, exact=False, hidden_lower_bound=pairwise_lower_bound(hidden))
