"""N:M semi-structured masks: in every group of M consecutive inputs of every row, keep N.

A row is one output unit's incoming weights, `weight.flatten(1)[o]` (for a convolution: its
in_channels x kh x kw kernel in PyTorch's order). Each row is cut into groups of M consecutive
entries, and in each group the N highest-scoring entries are kept (ties go to the lower index),
so exactly N of every M weights survive: the pattern sparse tensor cores run (2:4). A row whose
length is not a multiple of M cannot be cut this way and is refused.

Used by every branch that makes a mask: prune_in_rounds(..., structure="N:M") (oneshot), the
iterative branches' levels and gmp's pruning steps (which pass through K:M, N < K <= M, on the way:
`kept_per_group`), and the sparse-training branches' random start (`random_nm_mask`) and regrowth
(`grow_in_groups`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

import torch

from foundations.errors import UserError
from pruning.mask import Mask
from pruning.validate import considered_layers

PATTERN = re.compile(r"^([1-9]\d*):([1-9]\d*)$")


def parse_pattern(text: str) -> tuple[int, int]:
    """'2:4' -> (2, 4); a UserError unless 0 < N < M."""
    match = PATTERN.match(text.strip())
    if match is None or not int(match[1]) < int(match[2]):
        raise UserError(f"--structure={text} is not an N:M pattern with 0 < N < M, e.g. 2:4")
    return int(match[1]), int(match[2])


def kept_per_group(n: int, m: int, density: float) -> int:
    """How many of every M a step toward N:M keeps at `density`: round(M * density), but never
    fewer than N nor more than M (the decaying N:M schedule of Kao et al. 2022)."""
    return min(m, max(n, round(m * density)))


def check_divisible(shapes: Mapping[str, torch.Size], m: int) -> None:
    """A UserError naming the first layer whose rows are not a whole number of groups of m."""
    for name, shape in shapes.items():
        row = int(torch.Size(shape)[1:].numel())
        if row % m:
            raise UserError(f"{name} has {row} inputs per row, not a multiple of {m}, so it cannot take an "
                            f"N:{m} pattern: leave it out with --prune_layers_to_ignore={name}")


def nm_mask(scores: Mapping[str, torch.Tensor], mask: Mask, n: int, m: int,
            layers_to_ignore: Iterable[str] = ()) -> Mask:
    """`mask` with every considered layer cut to N of every M (by score); other layers as they are.

    Entries already pruned in `mask` score below every live one, so they are the first to go."""
    names = considered_layers(mask.keys(), layers_to_ignore)
    check_divisible({name: mask[name].shape for name in names}, m)
    result = dict(mask.items())
    for name in names:
        alive = mask[name]
        groups = scores[name].detach().to(alive.device, torch.float64).reshape(-1, m).clone()
        groups[~alive.reshape(-1, m)] = -torch.inf
        order = torch.sort(groups, dim=1, descending=True, stable=True).indices
        kept = torch.zeros_like(groups, dtype=torch.bool).scatter_(1, order[:, :n], True)
        result[name] = kept.reshape(alive.shape) & alive
    return Mask(result)


def random_nm_mask(shapes: Mapping[str, tuple[int, ...]], n: int, m: int, seed: int) -> Mask:
    """A mask of N of every M at places drawn from `seed` (uniform within each group, on the CPU,
    so the same on every device): the random start of N:M sparse training."""
    generator = torch.Generator().manual_seed(seed)
    draws = {name: torch.rand(tuple(shape), generator=generator) for name, shape in shapes.items()}
    dense = Mask({name: torch.ones(tuple(shape), dtype=torch.bool) for name, shape in shapes.items()})
    return nm_mask(draws, dense, n, m)


def grow_in_groups(kept: torch.Tensor, before: torch.Tensor, grow_scores: torch.Tensor, m: int) -> torch.Tensor:
    """`kept` (flat bool, after a drop) with, in every group of m consecutive entries, as many
    entries grown as the drop took from that group (its count in `before` less its count in
    `kept`): the inactive ones with the highest grow score, ties to the lower index."""
    groups = kept.reshape(-1, m)
    deficit = before.reshape(-1, m).sum(dim=1) - groups.sum(dim=1)
    values = grow_scores.detach().reshape(-1, m).to(kept.device, torch.float64)
    values = torch.nan_to_num(values, nan=-torch.inf).clamp_min(torch.finfo(torch.float64).min)
    values = values.masked_fill(groups, -torch.inf)  # the active entries sort after every candidate
    order = torch.sort(values, dim=1, descending=True, stable=True).indices
    take = torch.arange(m, device=kept.device).unsqueeze(0) < deficit.unsqueeze(1)
    grown = torch.zeros_like(groups).scatter_(1, order, take)
    return (groups | grown).reshape(-1)
