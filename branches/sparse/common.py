"""What the sparse-training branches share: the `sparse` bundle (density and layer allocation),
training under a mask that may change, and the result they report beside their controls.

On disk, a sparse branch's directory holds `training/` (the run: `mask.pt` is the mask training
starts from, then metrics, weights and done.json as for any run), and beside it the mask training
ended with (`mask.pt`, `sparsity.json`) and `updates.json` (the per-layer active counts from each
mask change on). Its `branch_done.json` holds the run's metrics and a results table: the method,
the static random control at the same densities (the `static-sparse` branch with the same `sparse`
flags, when it has run) and the dense trunk, each with test accuracy, density and training FLOPs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Optional

import torch

from branches.sparse.cost import dense_training_flops, training_flops
from branches.sparse.hook import UPDATES, DynamicMaskHook
from branches.sparse.layers import ALLOCATION_HELP, FIRST_HELP, OUTPUT_HELP, canonical_layer, layer_counts
from foundations import paths
from foundations.desc import hash_bundles
from foundations.hparams import Hparams, hparam
from platforms.storage import read_json
from pruning.allocation import ALLOCATIONS, check_density, random_mask
from pruning.mask import Mask
from runs import run_files
from runs.branch import Branch, load_mask, train_masked

TRAINING = "training"
STATIC = "static-sparse"
ROW_HEADER = ["network", "density", "test accuracy", "train FLOPs / dense", "run"]


@dataclass
class SparseHparams(Hparams):
    _name = "Sparse Training Hyperparameters"
    _description = "The density trained at, how it is shared among the layers, and the seed of the random masks."

    train_density: float = hparam(help="fraction of the allocated weights active throughout training, in (0, 1] "
                                       "(not --density: that name is the reading commands' measured density)")
    allocation: str = hparam("erk", ALLOCATION_HELP, choices=ALLOCATIONS)
    first_layer: str = hparam("auto", FIRST_HELP)
    output_layer: str = hparam("auto", OUTPUT_HELP)
    seed: Optional[int] = hparam(None, "seed of the random initial mask and of SET's regrowth "
                                       "(default: derived from the replicate)")

    def validate(self) -> None:
        if self.train_density is not None:
            check_density(self.train_density, "train_density")
        self.first_layer = canonical_layer(self.first_layer, "first_layer")
        self.output_layer = canonical_layer(self.output_layer, "output_layer")


def initial_random_mask(branch: Branch, h: SparseHparams) -> Mask:
    """The random mask training starts from: each layer's count from the allocation (`global`: of
    one magnitude threshold over the initial weights), places drawn from the branch's seed."""
    model = branch.trunk.initial_model()
    counts = layer_counts(model, h.allocation, h.train_density, h.first_layer, h.output_layer)
    state = model.state_dict()
    return random_mask({name: tuple(state[name].shape) for name in counts}, counts, branch.seed())


def check_layers(branch: Branch, h: SparseHparams) -> None:
    """Refuse, before anything is written, flags that leave nothing to allocate."""
    model = branch.trunk.fresh_model()
    layer_counts(model, h.allocation, h.train_density, h.first_layer, h.output_layer)


def train_sparse(branch: Branch, initial_mask: Callable[[], Mask],
                 make_hook: Callable[[Mask, Path], DynamicMaskHook], static: Optional[Path]) -> list[list[str]]:
    """Train the trunk's initialization from `initial_mask()` (computed once, on rank 0) with the
    method's hook in `<branch>/training/`; returns the summary rows (beside `static`, the
    directory of its static random control)."""
    trunk = branch.trunk
    directory = branch.dir / TRAINING
    mask = load_mask(directory) or trunk.platform.on_primary(lambda: initial_mask().to("cpu"))
    train_masked(trunk, directory, trunk.initial_model(), mask, mask_hook=make_hook(mask, branch.dir))
    return result_rows(branch, static)


# ---- results --------------------------------------------------------------------------------
def static_sibling(branch: Branch, h: SparseHparams) -> Path:
    """The directory of the static random control at these `sparse` flags."""
    return paths.branch_dir(branch.trunk.dir, STATIC, hash_bundles({"sparse": h}, extra=branch.trunk.desc.hash))


def dynamic_steps(branch: Branch) -> Iterable[int]:
    """The iterations after whose step the method read a dense gradient (RigL's updates)."""
    hook = getattr(branch.module, "dense_gradient_steps", None)
    return hook(branch) if hook else ()


def run_result(branch: Branch, directory: Path, dense_gradient_steps: Iterable[int] = ()) -> Optional[dict]:
    """{test accuracy, density, train GFLOPs, train FLOPs / dense} of a finished sparse run in
    `directory`, or None when it has not finished."""
    trunk = branch.trunk
    done = run_files.read_done(directory / TRAINING, trunk.end_step)
    updates = read_json(directory / UPDATES) if (directory / UPDATES).exists() else None
    if done is None or not isinstance(updates, dict):
        return None
    sparsity = read_json(directory / paths.SPARSITY)
    flops = training_flops(*_cost_inputs(branch), history=updates["updates"], end=trunk.end_step.iteration,
                           **_data_sizes(branch), dense_gradient_steps=dense_gradient_steps)
    dense = dense_flops(branch)
    return {"test accuracy": done["metrics"].get("test_accuracy"), "density": sparsity["density"],
            "train GFLOPs": flops / 1e9, "train FLOPs / dense": flops / dense}


def dense_flops(branch: Branch) -> float:
    return dense_training_flops(*_cost_inputs(branch), end=branch.trunk.end_step.iteration, **_data_sizes(branch))


def _cost_inputs(branch: Branch) -> tuple[torch.nn.Module, torch.Tensor]:
    model = branch.trunk.fresh_model().to("cpu")
    return model, torch.zeros(branch.trunk.info.input_shape)


def _data_sizes(branch: Branch) -> dict:
    loader = branch.trunk.loader(True)
    return {"iterations_per_epoch": len(loader), "num_examples": loader.num_examples,
            "batch_size": loader.batch_size}


def results_table(branch: Branch, label: str, static: Optional[Path]) -> list[list]:
    """[[row, {metric: value}], ...]: the method, its static random control (when it has run) and
    the dense trunk."""
    rows = []
    own = run_result(branch, branch.dir, dynamic_steps(branch))
    if own is not None:
        rows.append([label, own])
    if static is not None and static != branch.dir:
        control = run_result(branch, static)
        if control is not None:
            rows.append(["static random (same densities)", control])
    trunk_done = branch.trunk.done()
    if trunk_done is not None:
        rows.append(["dense (trunk)", {"test accuracy": trunk_done["metrics"].get("test_accuracy"), "density": 1.0,
                                       "train GFLOPs": dense_flops(branch) / 1e9, "train FLOPs / dense": 1.0}])
    return rows


def sparse_summary(branch: Branch, label: str, static: Optional[Path]) -> dict:
    """What branch_done.json shows: the run's metrics (so `report` reads its accuracy) and compute
    (parameters and forward FLOPs of the final mask, for `runs` and `report`), its training FLOPs
    as a headline, and the results table beside its controls."""
    done = run_files.read_done(branch.dir / TRAINING, branch.trunk.end_step) or {}
    table = results_table(branch, label, static)
    own = dict(table[0][1]) if table and table[0][0] == label else {}
    headline = [[name, own[name]] for name in ("train FLOPs / dense",) if own.get(name) is not None]
    return {"metrics": done.get("metrics", {}), "final_step": done.get("final_step"), "headline": headline,
            "results": table, "compute": done.get("compute", {})}


def result_rows(branch: Branch, static: Optional[Path]) -> list[list[str]]:
    """The summary rows printed when the branch finishes: the method, its static control (when it
    has run) and the dense trunk."""
    label = branch.name
    rows = []
    for name, values in results_table(branch, label, static):
        where = {label: branch.dir, "dense (trunk)": branch.trunk.dir}.get(name, static)
        rows.append([name, f"{values['density']:.4f}", _percent(values["test accuracy"]),
                     f"{values['train FLOPs / dense']:.3f}", str(where)])
    return rows


def _percent(value: Optional[float]) -> str:
    return "-" if value is None else f"{value:.4f}"
