"""The one entry point: exact orderedness up to a limit, the heuristic beyond it only if asked."""

from __future__ import annotations

import torch

from foundations.errors import UserError
from orderedness.exact import exact_orderedness
from orderedness.heuristic import heuristic_orderedness
from orderedness.result import OrderednessResult

EXACT_LIMIT = 20  # hidden units; at 20 the DP takes under a second per block on one CPU core


def orderedness(block: torch.Tensor, num_outputs: int, allow_heuristic: bool = False,
                exact_limit: int = EXACT_LIMIT, dtype: torch.dtype = torch.float64) -> OrderednessResult:
    """Orderedness of blocks (..., N, N) = |W[:, :H+O]|, the O outputs fixed first:
    1 - min over hidden orders of (mass below the diagonal) / (all mass).

    Exact (dynamic programming) while H <= `exact_limit`; beyond it a UserError unless
    `allow_heuristic`, which gives the greedy + insertion result with its gap to a lower bound.
    """
    if not isinstance(block, torch.Tensor) or block.dim() < 2:
        raise UserError("orderedness needs square blocks of shape (..., N, N): cut W[:, :H+O] first")
    hidden = block.shape[-1] - num_outputs if isinstance(num_outputs, int) else 0
    if hidden <= exact_limit:
        return exact_orderedness(block, num_outputs, dtype)
    if not allow_heuristic:
        raise UserError(f"orderedness: {hidden} hidden units is beyond the exact limit of {exact_limit}; "
                        "allow the heuristic (allow_heuristic=True, reports its gap) or raise exact_limit")
    return heuristic_orderedness(block, num_outputs, dtype=dtype)
