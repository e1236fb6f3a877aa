"""How an unstructured sweep turns scores into a mask: the authors' ranking, or an exact count.

`percentile` (the default: what produced the published numbers, the authors' sparsify_v2.py)
  ranks every parameter of the network together, biases included. OPD and post_only prune every
  entry whose score lies strictly below the s-th percentile of all scores (numpy's percentile,
  linear interpolation), so ties at the threshold survive and the sparsity reached can fall short
  of s; magnitude, random and the data-driven criteria remove the floor(s * n) lowest entries.
`exact` (the clean variant) ranks the conv and linear weights only and removes exactly
  round(s * n) of them, whatever the criterion, so every criterion is compared at the same count.

Sparsity, density and the counts of a cell are over what was ranked: every parameter under
`percentile`, the weights under `exact`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Optional

import numpy as np
import torch
from torch import nn

from pruning.mask import Mask
from pruning.select import prune, remove

RANKINGS = ("percentile", "exact")
THRESHOLD_CRITERIA = ("opd", "post_only")  # ranked by a percentile threshold in the authors' code


def dense_mask(model: nn.Module, ranking: str, covered: Optional[Iterable[str]] = None) -> Mask:
    """Every entry that can be pruned, all kept: each parameter (percentile; only those `covered`
    by the posterior where it is restricted, as a language model's is) or each weight (exact)."""
    if ranking == "percentile":
        kept = None if covered is None else set(covered)
        return Mask({name: torch.ones_like(p, dtype=torch.bool) for name, p in model.named_parameters()
                     if kept is None or name in kept})
    return Mask.ones_like(model)


def percentile_threshold(scores: Iterable[torch.Tensor], percent: float) -> float:
    """numpy's percentile (linear interpolation) of all scores together, in float64."""
    flat = np.concatenate([s.detach().reshape(-1).double().cpu().numpy() for s in scores])
    return float(np.percentile(flat, percent))


def below_percentile(scores: Mapping[str, torch.Tensor], dense: Mask, percent: float,
                     names: list[str]) -> Mask:
    """Prune the entries of `names` whose score is strictly below the `percent` percentile."""
    threshold = percentile_threshold([scores[name] for name in names], percent)
    kept = dict(dense.items())
    for name in names:
        kept[name] = dense[name] & (scores[name].double().to(dense[name].device) >= threshold)
    return Mask(kept)


def floor_count(scores: Mapping[str, torch.Tensor], dense: Mask, percent: float, names: list[str],
                highest: bool = False) -> Mask:
    """Remove the floor(percent / 100 * n) lowest (or highest) entries of `names` together."""
    total = sum(dense[name].numel() for name in names)
    count = math.floor(percent / 100 * total)
    return Mask(remove(scores, dict(dense.items()), {tuple(names): count}, highest=highest))


def ranked_mask(scores: Mapping[str, torch.Tensor], dense: Mask, percent: float, criterion: str, ranking: str,
                ignore: list[str], highest: bool = False) -> Mask:
    """The mask of one unstructured cell (see the module docstring)."""
    if ranking == "exact":
        return prune(scores, dense, percent / 100, scope="global", highest=highest, layers_to_ignore=ignore)
    names = [name for name in dense.keys() if name not in ignore]
    if criterion in THRESHOLD_CRITERIA:
        return below_percentile(scores, dense, percent, names)
    return floor_count(scores, dense, percent, names, highest=highest)
