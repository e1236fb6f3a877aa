"""What the sparse-training branches share: the `sparse` bundle (density and layer allocation),
training under a mask that may change, and the result they report beside their controls.

On disk, a sparse branch's directory holds `training/` (the run: `mask.pt` is the mask training
starts from, then metrics, weights and done.json as for any run), and beside it the mask training
ended with (`mask.pt`, `sparsity.json`) and `updates.json` (the per-layer active counts from each
mask change on). Its `branch_done.json` holds the run's metrics and a results table: the method,
the static random control at the same densities (the `static-sparse` branch with the same `sparse`
flags, when it has run) and the dense trunk, each with test accuracy, density and training FLOPs.

With `--structure=N:M` every allocated layer keeps N of every M consecutive inputs of every row
(pruning/nm.py): the random start draws N of every M uniformly, and the methods keep the pattern at
every change (dynamic.py, gmp.py). The pattern sets the allocated layers' density, so
`--train_density` must be N/M, and no allocation applies (`--allocation` stays at its default; a
layer given a density of its own keeps it, unstructured, as without --structure).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, NamedTuple, Optional

import torch

from branches.sparse.cost import dense_training_flops, training_flops
from branches.sparse.hook import UPDATES, DynamicMaskHook
from branches.sparse.layers import (
    ALLOCATION_HELP,
    FIRST_HELP,
    OUTPUT_HELP,
    STRUCTURE_HELP,
    canonical_layer,
    fixed_densities,
    layer_counts,
)
from foundations import paths
from foundations.desc import hash_bundles
from foundations.errors import UserError
from foundations.hparams import Hparams, hparam
from platforms.storage import read_json
from pruning.allocation import ALLOCATIONS, check_density, random_mask
from pruning.mask import Mask
from pruning.nm import check_divisible, parse_pattern, random_nm_mask
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
    structure: Optional[str] = hparam(None, STRUCTURE_HELP)

    def validate(self) -> None:
        if self.train_density is not None:
            check_density(self.train_density, "train_density")
        self.structure, self.allocation = check_structure(self.structure, self.train_density, "train_density",
                                                          self.allocation, "erk")
        self.first_layer = canonical_layer(self.first_layer, "first_layer")
        self.output_layer = canonical_layer(self.output_layer, "output_layer")


def check_structure(structure: Optional[str], density: Optional[float], flag: str, allocation: str,
                    default_allocation: str) -> tuple[Optional[str], str]:
    """(structure, allocation) as stored and hashed: '2:4' canonical, and `uniform` (what N:M gives
    every allocated layer) stored as the default allocation; a UserError for a density other than
    N/M or an allocation that would share the density differently."""
    if structure is None:
        return None, allocation
    n, m = parse_pattern(structure)
    if density is not None and abs(density - n / m) > 1e-9:
        raise UserError(f"--{flag}={density} contradicts --structure={structure}, which keeps {n / m:g} of every "
                        f"allocated layer: give --{flag}={n / m:g}")
    if allocation not in (default_allocation, "uniform"):
        raise UserError(f"--allocation={allocation} shares the density among layers, but --structure={structure} "
                        f"gives every allocated layer {n}:{m}: leave --allocation out")
    return f"{n}:{m}", default_allocation


class Grouping(NamedTuple):
    """The N:M layers of a sparse branch: the allocated ones (a layer with a density of its own is not)."""
    n: int
    m: int
    names: frozenset[str]


def grouping(model: torch.nn.Module, structure: Optional[str], first_layer: str,
             output_layer: str) -> Optional[Grouping]:
    """The N:M layers for these flags (None without --structure), checked to be whole groups of M."""
    if structure is None:
        return None
    n, m = parse_pattern(structure)
    fixed = fixed_densities(model, first_layer, output_layer)
    state = model.state_dict()
    names = [name for name in model.prunable_layer_names if name not in fixed]
    check_divisible({name: state[name].shape for name in names}, m)
    return Grouping(n, m, frozenset(names))


def initial_random_mask(branch: Branch, h: SparseHparams) -> Mask:
    """The random mask training starts from: each layer's count from the allocation (`global`: of
    one magnitude threshold over the initial weights), places drawn from the branch's seed; with
    --structure, the allocated layers N of every M at places drawn from the seed."""
    model = branch.trunk.initial_model()
    counts = layer_counts(model, h.allocation, h.train_density, h.first_layer, h.output_layer)
    state = model.state_dict()
    mask = random_mask({name: tuple(state[name].shape) for name in counts}, counts, branch.seed())
    groups = grouping(model, h.structure, h.first_layer, h.output_layer)
    if groups is None:
        return mask
    drawn = random_nm_mask({name: tuple(state[name].shape) for name in groups.names}, groups.n, groups.m,
                           branch.seed())
    return Mask({name: drawn[name] if name in groups.names else tensor for name, tensor in mask.items()})


def check_layers(branch: Branch, h: SparseHparams) -> None:
    """Refuse, before anything is written, flags that leave nothing to allocate, and N:M layers
    whose rows are not whole groups of M."""
    model = branch.trunk.fresh_model()
    layer_counts(model, h.allocation, h.train_density, h.first_layer, h.output_layer)
    grouping(model, h.structure, h.first_layer, h.output_layer)


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
    """The network and one test example to count FLOPs on (as the loop counts a run's: a window of
    token ids for a language model, whose context the flags may shorten)."""
    model = branch.trunk.fresh_model().to("cpu")
    example = next(iter(branch.trunk.loader(False).batches(0)))[0][0]
    return model, example.to("cpu")


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
