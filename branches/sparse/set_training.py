"""set: Sparse Evolutionary Training (Mocanu et al. 2018), as the RigL code runs it.

Start from the static random mask at the allocated per-layer densities (ERK by default). Every
ΔT steps, each layer drops the cosine-decaying fraction of its active weights with the smallest
magnitude and regrows as many at random among its inactive weights; a regrown weight starts at
zero with no optimizer state. Updates stop after 3/4 of training. (The paper drops a fixed
ζ = 0.3 of the smallest positive and largest negative weights once per epoch: `--drop_anneal=constant`
and `--update_every=1ep` come close.)
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

NAME = "set"
SUMMARY = "sparse evolutionary training: drop the smallest active weights, regrow as many at random"
BUNDLES = {"sparse": SparseHparams, "set": UpdateHparams}


class RandomRegrowth(DropAndGrow):
    def __init__(self, *args, seed: int):
        super().__init__(*args)
        self.seed = seed

    def grow_scores(self, name: str, layer: int, iteration: int) -> torch.Tensor:
        """A uniform draw from (seed, iteration, layer) on the CPU: the same on every device and
        after a resume, with no generator state to keep."""
        generator = torch.Generator().manual_seed((self.seed * 1_000_003 + iteration) * 1009 + layer)
        return torch.rand(self.mask[name].shape, generator=generator)


def check(branch: Branch) -> None:
    check_layers(branch, branch.bundles["sparse"])
    update_steps(branch, branch.bundles["set"])


def run(branch: Branch) -> list[list[str]]:
    h = branch.bundles["sparse"]
    steps = update_steps(branch, branch.bundles["set"])
    groups = grouping(branch.trunk.fresh_model(), h.structure, h.first_layer, h.output_layer)
    return train_sparse(branch, lambda: initial_random_mask(branch, h),
                        lambda mask, final_dir: RandomRegrowth(mask, final_dir, steps, branch.bundles["set"], groups,
                                                               seed=branch.seed()),
                        static=static_sibling(branch, h))


def summary(branch: Branch) -> dict:
    return sparse_summary(branch, NAME, static_sibling(branch, branch.bundles["sparse"]))
