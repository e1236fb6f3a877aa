"""rigl: Rigging the Lottery (Evci et al. 2020).

Start from the static random mask at the allocated per-layer densities (ERK by default). Every
ΔT steps, each layer drops the cosine-decaying fraction of its active weights with the smallest
magnitude and grows as many where the dense gradient of that step is largest in magnitude among
its inactive weights. The dense gradient is read only at those steps (training/loop.py computes
gradients for the dense weight tensors; a sparse kernel would pay a dense weight gradient there
only, which is what the FLOPs count). Grown weights start at zero with their optimizer state reset;
updates stop after 3/4 of training (`--update_end`).
"""

from __future__ import annotations

import torch

from branches.sparse.common import ROW_HEADER as ROW_HEADER
from branches.sparse.common import (
    SparseHparams,
    check_layers,
    grouping,
    initial_random_mask,
    sparse_summary,
    static_sibling,
    train_sparse,
)
from branches.sparse.dynamic import DropAndGrow, UpdateHparams, update_steps
from runs.branch import Branch

NAME = "rigl"
SUMMARY = "RigL: drop the smallest active weights, grow where the dense gradient is largest"
BUNDLES = {"sparse": SparseHparams, "rigl": UpdateHparams}


class GradientRegrowth(DropAndGrow):
    needs_gradient = True

    def grow_scores(self, name: str, layer: int, iteration: int) -> torch.Tensor:
        gradient = self.gradients.get(name) if self.gradients else None
        if gradient is None:  # a layer outside the graph this step: nothing to prefer
            return torch.zeros_like(self.mask[name], dtype=torch.float32)
        return gradient.abs()


def check(branch: Branch) -> None:
    check_layers(branch, branch.bundles["sparse"])
    update_steps(branch, branch.bundles["rigl"])


def dense_gradient_steps(branch: Branch) -> list[int]:
    """The iterations after whose step a dense gradient was read (for the FLOPs)."""
    steps = update_steps(branch, branch.bundles["rigl"])
    return [i for i in range(steps.begin + 1, steps.end + 1) if i in steps]


def run(branch: Branch) -> list[list[str]]:
    h = branch.bundles["sparse"]
    steps = update_steps(branch, branch.bundles["rigl"])
    groups = grouping(branch.trunk.fresh_model(), h.structure, h.first_layer, h.output_layer)
    return train_sparse(branch, lambda: initial_random_mask(branch, h),
                        lambda mask, final_dir: GradientRegrowth(mask, final_dir, steps, branch.bundles["rigl"],
                                                                 groups),
                        static=static_sibling(branch, h))


def summary(branch: Branch) -> dict:
    return sparse_summary(branch, NAME, static_sibling(branch, branch.bundles["sparse"]))
