"""The drop-and-grow update of dynamic sparse training (SET, RigL), one layer at a time.

Drop: the `floor(n_active * fraction)` active weights of smallest magnitude. Grow: as many among the
weights inactive after the drop, those with the highest grow score (SET: a uniform random draw;
RigL: the magnitude of the dense gradient). As in the RigL code (`_get_update_op`), a weight just
dropped may be grown again at once: it is then no new connection and keeps its value. New
connections are the grown weights that were inactive before the update; the caller sets them to
zero and resets their optimizer state. Ties go to the lower flat index (the RigL code breaks them
with 1e-5 noise), so the same inputs always give the same mask. The k extremes are found by a
selection (`torch.kthvalue`, linear time) rather than a sort: a layer of 235k weights updates in a
few milliseconds on one CPU thread.

For an N:M layer (`group_size` M) the drop is the same, and each group of M consecutive inputs
regrows exactly as many as it lost, among its own inactive weights by the grow score
(pruning/nm.grow_in_groups), so every group keeps its N.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch

from pruning.nm import grow_in_groups


@dataclass
class LayerUpdate:
    mask: torch.Tensor            # the new mask (bool, the weight's shape)
    new_connections: torch.Tensor  # grown and inactive before the update (bool, the weight's shape)
    dropped: int                  # how many active weights were dropped (and as many grown)


def extremes(values: torch.Tensor, count: int, largest: bool) -> torch.Tensor:
    """The positions of the `count` largest (or smallest) of a 1-D tensor, ties to the lower
    position: the set a stable sort's first `count` would give."""
    n = values.numel()
    if count <= 0:
        return torch.zeros(0, dtype=torch.long, device=values.device)
    if count >= n:
        return torch.arange(n, device=values.device)
    threshold = torch.kthvalue(values, n - count + 1 if largest else count).values
    beyond = ((values > threshold) if largest else (values < threshold)).nonzero().squeeze(1)
    equal = (values == threshold).nonzero().squeeze(1)
    return torch.cat([beyond, equal[:count - beyond.numel()]])


def drop_and_grow(weight: torch.Tensor, mask: torch.Tensor, fraction: float,
                  grow_scores: torch.Tensor, group_size: Optional[int] = None) -> LayerUpdate:
    """One layer's update; the number of active weights is unchanged (in every group of
    `group_size` consecutive entries too, when given)."""
    before = mask.reshape(-1)
    active = before.nonzero().squeeze(1)
    count = int(active.numel() * fraction)
    if count == 0:
        return LayerUpdate(mask.clone(), torch.zeros_like(mask), 0)
    magnitude = weight.detach().abs().reshape(-1)[active]
    kept = before.clone()
    kept[active[extremes(magnitude, count, largest=False)]] = False
    if group_size is not None:
        after = grow_in_groups(kept, before, grow_scores, group_size)
        return LayerUpdate(after.view_as(mask), (after & ~before).view_as(mask), count)
    candidates = (~kept).nonzero().squeeze(1)
    scores = grow_scores.detach().reshape(-1).to(weight.device)[candidates]
    after = kept.clone()
    after[candidates[extremes(scores, count, largest=True)]] = True
    return LayerUpdate(after.view_as(mask), (after & ~before).view_as(mask), count)
