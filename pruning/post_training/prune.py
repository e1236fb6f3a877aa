"""One entry point for the post-training strategies: how many weights each layer loses (uniform,
ERK or OWL) and the pruning itself (Wanda's mask, or SparseGPT's mask and reconstructed weights)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Optional

from torch import nn

from pruning.mask import Mask
from pruning.nm import parse_pattern
from pruning.post_training import owl, sparsegpt, wanda
from pruning.post_training.calibration import CalibrationData
from pruning.rounds import ALLOCATIONS
from pruning.select import alive_counts, make_groups

STRATEGIES = ("wanda", "sparsegpt")
# per layer: uniform (the papers'), OWL, or any allocation of pruning/rounds.py (erk, lamp)
SCOPES = ("layerwise", "owl", *(scope for scope in ALLOCATIONS if scope != "owl"))


@dataclass(frozen=True)
class PostTrainingSettings:
    """What a post-training pruning call is told besides the model, the mask and the data."""

    strategy: str
    fraction: Optional[float] = None  # of the alive weights of the named layers; None with `structure`
    scope: str = "layerwise"
    structure: Optional[str] = None  # "N:M"
    wanda_group: str = "row"
    damp: float = sparsegpt.DEFAULT_DAMP
    blocksize: int = sparsegpt.DEFAULT_BLOCKSIZE
    owl_threshold: float = owl.DEFAULT_THRESHOLD
    owl_lambda: float = owl.DEFAULT_LAMBDA


def layer_removals(model: nn.Module, mask: Mask, names: Sequence[str], settings: PostTrainingSettings,
                   data: CalibrationData) -> dict[str, int]:
    """How many weights each named layer loses: the same fraction of each (layerwise), OWL's
    shares, or another allocation's (ERK, LAMP); zeros under an N:M structure (which fixes every
    layer's count itself)."""
    alive = alive_counts(dict(mask.items()), make_groups(list(names), "layerwise"))
    if settings.structure is not None:
        return {name: 0 for name in names}
    if settings.scope == "owl":
        removals = owl.owl_removals(model, mask, alive, settings.fraction, data, threshold=settings.owl_threshold,
                                    lam=settings.owl_lambda)
    elif settings.scope in ALLOCATIONS:  # they read no data
        removals = ALLOCATIONS[settings.scope](model, mask, alive, settings.fraction, None)
    elif settings.scope == "layerwise":
        removals = {group: round(settings.fraction * count) for group, count in alive.items()}
    else:
        raise ValueError(f"post-training pruning allots per layer: scope {settings.scope!r} is not one of {SCOPES}")
    return {group[0]: count for group, count in removals.items()}


def prune_post_training(model: nn.Module, mask: Mask, names: Sequence[str], settings: PostTrainingSettings,
                        data: CalibrationData) -> tuple[Mask, Optional[nn.Module]]:
    """(mask, SparseGPT's reconstructed copy of `model` or None for Wanda) with the named layers
    pruned; `model` is not changed."""
    removals = layer_removals(model, mask, names, settings, data)
    nm = parse_pattern(settings.structure) if settings.structure else None
    if settings.strategy == "wanda":
        return wanda.wanda_prune(model, mask, removals, data, group=settings.wanda_group, nm=nm), None
    if settings.strategy != "sparsegpt":
        raise ValueError(f"unknown post-training strategy {settings.strategy!r}: use one of {STRATEGIES}")
    return sparsegpt.sparsegpt_prune(model, mask, removals, data, nm=nm, blocksize=settings.blocksize,
                                     damp=settings.damp)
