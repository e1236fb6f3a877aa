"""static-sparse: the control of sparse training: a random mask at the same per-layer densities,
never changed.

Each layer keeps the count its allocation gives it (`--allocation=erk` by default, the RigL
paper's "Static" baseline), at places drawn from the branch's seed: the mask the set and rigl
branches start from at the same `sparse` flags and replicate. The trunk's initialization is
trained under it for the trunk's whole schedule.
"""

from __future__ import annotations

from branches.sparse.common import ROW_HEADER as ROW_HEADER
from branches.sparse.common import SparseHparams, check_layers, initial_random_mask, sparse_summary, train_sparse
from branches.sparse.hook import DynamicMaskHook
from runs.branch import Branch

NAME = "static-sparse"
SUMMARY = "sparse training's control: a random mask at the allocation's per-layer densities, never changed"
BUNDLES = {"sparse": SparseHparams}


def check(branch: Branch) -> None:
    check_layers(branch, branch.bundles["sparse"])


def run(branch: Branch) -> list[list[str]]:
    h = branch.bundles["sparse"]
    return train_sparse(branch, lambda: initial_random_mask(branch, h),
                        lambda mask, final_dir: DynamicMaskHook(mask, final_dir), static=None)


def summary(branch: Branch) -> dict:
    return sparse_summary(branch, NAME, None)
