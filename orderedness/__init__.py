"""Orderedness of weight-tied recurrent blocks: how close a block comes to feed-forward.

For a complete layer's square block A = |W[:, :H+O]| (outputs first, in their own order), the
orderedness is 1 - min over orders of the hidden units of (mass strictly below the diagonal) /
(all mass), rows and columns permuted together. Exact by dynamic programming over subsets,
batched over many blocks on any device; a greedy + insertion heuristic with a proven gap beyond
the exact limit; brute force over all orders as the reference; a shuffled-entries null.
Pure tensor math: no runs, no files.
"""

from orderedness.block import permute
from orderedness.brute import brute_force_orderedness
from orderedness.exact import MAX_EXACT_HIDDEN, exact_orderedness
from orderedness.heuristic import heuristic_orderedness, pairwise_lower_bound
from orderedness.measure import EXACT_LIMIT, orderedness
from orderedness.null import shuffled_entries
from orderedness.result import OrderednessResult

__all__ = [
    "EXACT_LIMIT",
    "MAX_EXACT_HIDDEN",
    "OrderednessResult",
    "brute_force_orderedness",
    "exact_orderedness",
    "heuristic_orderedness",
    "orderedness",
    "pairwise_lower_bound",
    "permute",
    "shuffled_entries",
]
