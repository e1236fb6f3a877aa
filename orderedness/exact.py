"""Exact orderedness by dynamic programming over subsets of hidden units (Held-Karp style).

Build the hidden order front to back. If the set S of hidden units is already placed, appending
unit v after all of them adds c(v, S) = sum over j in S of A[v, j] to the backward mass (row v
now comes later than every column j in S), whatever order S itself is in. So the least backward
mass of S is

    f(S) = min over v in S of  f(S - v) + c(v, S - v),      f(empty) = 0,

and the optimum is f(all hidden units): 2^H states, O(2^H * H) work. The subsets are processed
in layers of equal popcount; each layer is a handful of tensor gathers over all its subsets and
all matrices of the batch at once, on the blocks' device. c(., S) for a layer comes from the
previous layer (drop the lowest bit of S and add that column), so only two layers of c are ever
held. The choice of v for every S (one int8) is kept to backtrack the best permutation.
"""

from __future__ import annotations

import functools
import math

import torch

from foundations.errors import UserError
from orderedness.block import finish, prepare
from orderedness.result import OrderednessResult

MAX_EXACT_HIDDEN = 26  # 2^26 states: beyond this the state table itself no longer fits sensibly

_BYTES_PER_CHUNK = 1 << 29  # working memory the batch is cut to, roughly
_CACHED_UP_TO = 16           # layer indices kept between calls up to this H (a few MB)


class _Layer:
    """The subsets of one popcount k, as indices into the previous layer."""

    def __init__(self, subsets: torch.Tensor, bits: torch.Tensor, previous_rank: torch.Tensor) -> None:
        self.subsets = subsets              # (C,) bitmasks S with popcount k, ascending
        self.bits = bits                    # (C, k) the members of S, descending
        self.previous_rank = previous_rank  # (C, k) the position of S - bits[:, t] in layer k-1


def _layers(hidden: int, device: torch.device):
    """The layers k = 1..H: cached for small H, built on the fly beyond (at H = 20 they hold
    ~10^7 indices, more than is worth keeping around)."""
    if hidden <= _CACHED_UP_TO:
        return _cached_layers(hidden, device)
    return _build_layers(hidden, device)


@functools.lru_cache(maxsize=8)
def _cached_layers(hidden: int, device: torch.device) -> tuple[_Layer, ...]:
    return tuple(_build_layers(hidden, device))


def _build_layers(hidden: int, device: torch.device):
    masks = torch.arange(1 << hidden, device=device)
    popcount = torch.zeros_like(masks)
    for bit in range(hidden):
        popcount += (masks >> bit) & 1
    by_layer = torch.argsort(popcount, stable=True)  # ascending popcount, then ascending mask
    starts = [0]
    for k in range(hidden + 1):
        starts.append(starts[-1] + math.comb(hidden, k))
    start_of = torch.tensor(starts[:-1], device=device)
    rank = torch.empty_like(masks)
    rank[by_layer] = torch.arange(1 << hidden, device=device) - start_of[popcount[by_layer]]
    for k in range(1, hidden + 1):
        subsets = by_layer[starts[k]:starts[k + 1]]
        rest, members = subsets.clone(), []
        for _ in range(k):  # peel off the lowest set bit; its exponent is its index
            lowest = rest & -rest  # a power of two, exact in float32
            members.append(torch.frexp(lowest.float()).exponent.long() - 1)
            rest ^= lowest
        # Descending: min() keeps the first of equal candidates, so among tied last units the
        # highest index wins and a block with nothing to choose keeps the identity order.
        bits = torch.stack(members[::-1], dim=1)
        previous = subsets[:, None] ^ (1 << bits)
        yield _Layer(subsets, bits, rank[previous])


def _chunk_size(hidden: int) -> int:
    widest = math.comb(hidden, hidden // 2)
    per_matrix = 8 * widest * (3 * hidden + 4) + (1 << hidden)
    return max(1, _BYTES_PER_CHUNK // per_matrix)


def _best_orders(hidden_blocks: torch.Tensor) -> torch.Tensor:
    """(B, H, H) magnitudes -> (B, H) hidden orders of least backward mass.

    The batch is the last dimension of every table, so each gather moves B contiguous numbers.
    """
    batch, h = hidden_blocks.shape[0], hidden_blocks.shape[-1]
    device, dtype = hidden_blocks.device, hidden_blocks.dtype
    if h == 0:
        return torch.zeros(batch, 0, dtype=torch.long, device=device)
    incoming = hidden_blocks.permute(2, 1, 0).contiguous()  # incoming[j, v, b] = A[b, v, j]
    least = torch.zeros(1, batch, dtype=dtype, device=device)       # f(S) over the layer
    cost_in = torch.zeros(1, h, batch, dtype=dtype, device=device)  # c(v, S) over the layer
    choice = torch.empty(1 << h, batch, dtype=torch.int8, device=device)
    for k, layer in enumerate(_layers(h, device), start=1):
        flat = layer.previous_rank * h + layer.bits  # where c(bits[t], S - bits[t]) sits
        candidates = least[layer.previous_rank] + cost_in.view(-1, batch)[flat]  # (C, k, B)
        least, picked = candidates.min(dim=1)
        choice[layer.subsets] = torch.gather(layer.bits, 1, picked).to(torch.int8)
        if k < h:  # c(., S) = c(., S - lowest bit) + that bit's column
            cost_in = torch.index_select(cost_in, 0, layer.previous_rank[:, -1])
            cost_in += torch.index_select(incoming, 0, layer.bits[:, -1])
    order = torch.empty(batch, h, dtype=torch.long, device=device)
    placed = torch.full((batch,), (1 << h) - 1, dtype=torch.long, device=device)
    everyone = torch.arange(batch, device=device)
    for position in range(h - 1, -1, -1):  # the last unit placed in `placed`, then the one before
        last = choice[placed, everyone].long()
        order[:, position] = last
        placed = placed ^ (1 << last)
    return order


def exact_orderedness(block: torch.Tensor, num_outputs: int,
                      dtype: torch.dtype = torch.float64) -> OrderednessResult:
    """The exact orderedness of every block in `block` (..., N, N), outputs first, and its best
    permutation. Memory is bounded by cutting the batch into chunks; float64 by default (pass
    float32 on devices without it)."""
    prepared = prepare(block, num_outputs, dtype)
    h = prepared.num_hidden
    if h > MAX_EXACT_HIDDEN:
        raise UserError(f"exact orderedness of {h} hidden units needs 2^{h} states, beyond the "
                        f"{MAX_EXACT_HIDDEN} supported: use heuristic_orderedness (reports its gap)")
    hidden = prepared.hidden
    step = _chunk_size(h)
    orders = [_best_orders(hidden[start:start + step].contiguous()) for start in range(0, hidden.shape[0], step)]
    order = torch.cat(orders) if orders else torch.zeros(0, h, dtype=torch.long, device=hidden.device)
    return finish(prepared, order, exact=True)
