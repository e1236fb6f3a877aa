"""Wanda (Sun et al. 2023, "A Simple and Effective Pruning Approach for Large Language Models").

A weight's score is |W_ij| · ‖X_j‖₂, its magnitude times the norm of its input feature over the
calibration rows (every token of every window, every patch position of a convolution). Weights
compete within their output row (`group="row"`, the paper's choice: each row loses the same
number) or within the whole layer (`group="layer"`). Layers are pruned step by step
(calibration.py): a step's inputs are captured through the steps before it as already pruned.
No weight is changed besides those removed. With an N:M pattern every row keeps the N
highest-scoring of each M consecutive inputs (pruning/nm.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Optional

import torch
from torch import nn

from pruning.mask import Mask
from pruning.nm import nm_mask
from pruning.post_training.calibration import CalibrationData, prune_step_by_step, removals_per_row
from pruning.select import remove

GROUPS = ("row", "layer")


def wanda_metric(weight: torch.Tensor, squares: torch.Tensor) -> torch.Tensor:
    """|W| · ‖X_j‖₂ shaped like `weight`, from the per-input sums of squares of its inputs."""
    flat = weight.detach().flatten(1).abs().to(squares.dtype) * squares.clamp_min(0).sqrt()[None, :]
    return flat.view(weight.shape)


def prune_rows(scores: torch.Tensor, alive: torch.Tensor, total: int) -> torch.Tensor:
    """`alive` with `total` more entries off, spread evenly over the rows (removals_per_row), the
    lowest scores of each row going (ties to the lower index)."""
    flat_scores, flat_alive = scores.flatten(1).double().clone(), alive.flatten(1)
    counts = removals_per_row(total, flat_scores.shape[0], flat_alive.sum(1)).to(alive.device)
    flat_scores[~flat_alive] = -torch.inf  # already pruned: ranked first, and counted on top
    order = torch.sort(flat_scores, dim=1, stable=True).indices
    ranks = torch.empty_like(order).scatter_(1, order, torch.arange(order.shape[1], device=order.device)
                                             .expand_as(order).contiguous())
    cut = (~flat_alive).sum(1) + counts
    return (flat_alive & (ranks >= cut[:, None])).view(alive.shape)


def select_layer(name: str, scores: torch.Tensor, alive: torch.Tensor, removal: int, group: str,
                 nm: Optional[tuple[int, int]]) -> torch.Tensor:
    """A layer's new alive entries from its scores: N:M, per row, or over the layer."""
    if nm is not None:
        return nm_mask({name: scores}, Mask({name: alive}), *nm)[name]
    if group == "row":
        return prune_rows(scores, alive, removal)
    return remove({name: scores}, {name: alive}, {(name,): removal})[name]


def wanda_prune(model: nn.Module, mask: Mask, removals: Mapping[str, int], data: CalibrationData, *,
                group: str = "row", nm: Optional[tuple[int, int]] = None) -> Mask:
    """`mask` with removals[layer] more weights off in every layer named (all of them N:M when
    `nm` is given, the counts then unused), chosen by Wanda step by step; `model` is not changed."""
    if group not in GROUPS:
        raise ValueError(f"unknown Wanda group {group!r}: use one of {GROUPS}")

    def prune_layer(name: str, weight: torch.Tensor, statistics, alive: torch.Tensor):
        scores = wanda_metric(weight, statistics.squares[name].to(weight.device))
        return None, select_layer(name, scores, alive, removals[name], group, nm)

    return prune_step_by_step(model, mask, removals, data, gram=False, group_size=nm[1] if nm else None,
                              prune_layer=prune_layer)[0]
