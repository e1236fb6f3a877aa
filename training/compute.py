"""What a trained network costs: its parameters and its forward FLOPs, dense and under its mask.

Counted once, when a run finishes (the loop calls `compute_record` before writing done.json), so
training pays nothing per step. The mask is read off the weights: a prunable weight that is zero
is pruned (a MaskHook, a per-step rule and a structured or N:M mask all leave pruned weights at
exactly zero), so the same rule serves every branch without asking it for its mask. FLOPs are
training/flops.py's: PyTorch's FlopCounterMode on one example, each masked layer scaled by its
density.

Training FLOPs of a plain run are estimated as 3 x forward FLOPs (with the mask) x examples seen
(the forward pass and a backward pass of twice its cost, as RigL's appendix counts them); a branch
whose mask changes while it trains (branches/sparse) counts its own.
"""

from __future__ import annotations

from typing import Any, Optional

import torch

from training.flops import dense_and_masked_flops

TRAINING_FLOPS_RULE = "3 x forward_flops x examples_seen"


def prunable_names(model: torch.nn.Module) -> list[str]:
    """The model's prunable weights (its `prunable_layer_names`; every Conv2d and Linear weight of
    a model that does not name them)."""
    names = getattr(model, "prunable_layer_names", None)
    if names is not None:
        return list(names)
    return [f"{name}.weight" for name, module in model.named_modules()
            if isinstance(module, (torch.nn.Conv2d, torch.nn.Linear))]


def parameter_counts(model: torch.nn.Module) -> dict[str, int]:
    """total, prunable and nonzero parameter counts (nonzero over every parameter)."""
    state = dict(model.named_parameters())
    prunable = [state[name] for name in prunable_names(model) if name in state]
    return {"parameters": sum(p.numel() for p in state.values()),
            "prunable": sum(p.numel() for p in prunable),
            "nonzero": sum(int(torch.count_nonzero(p.detach())) for p in state.values()),
            "nonzero_prunable": sum(int(torch.count_nonzero(p.detach())) for p in prunable)}


def weight_masks(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """{prunable weight name: weight != 0}: the mask as the weights show it."""
    state = dict(model.named_parameters())
    return {name: state[name].detach() != 0 for name in prunable_names(model) if name in state}


def compute_record(model: torch.nn.Module, example: torch.Tensor, examples_seen: Optional[int] = None
                   ) -> dict[str, Any]:
    """Parameters, forward FLOPs per example (dense and masked), the theoretical speedup
    (dense / masked) and, given the examples seen in training, the estimated training FLOPs."""
    dense, masked = dense_and_masked_flops(model, example, weight_masks(model))
    record: dict[str, Any] = {**parameter_counts(model), "forward_flops_dense": dense, "forward_flops": masked,
                              "speedup": dense / masked if masked else None}
    if examples_seen is not None:
        record.update(examples_seen=int(examples_seen), training_flops=3 * masked * examples_seen,
                      training_flops_rule=TRAINING_FLOPS_RULE)
    return record
