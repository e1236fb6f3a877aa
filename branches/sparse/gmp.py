"""gmp: gradual magnitude pruning (Zhu & Gupta 2017, "To prune, or not to prune").

Train the trunk's initialization dense and prune it while it trains: at the pruning steps
t0, t0 + Δt, ..., t0 + nΔt (`--begin_step`, `--prune_every`, up to `--end_step`) the density is
d_t = d_f + (d_i − d_f)(1 − (t − t0)/(nΔt))³, from `--initial_density` to `--final_density`, and the
active weights of smallest magnitude are removed to reach it (pruned weights stay pruned). With
`--allocation=global` one magnitude ranking over the allocated layers reaches the overall density
(the first and output layers' own densities, when given, follow the same cubic per layer); with
`uniform` (Zhu & Gupta's: every layer at the same density) or `erk`, each layer follows the cubic to
its own final density. After t0 + nΔt the mask stays as it is for the rest of training.

With `--structure=N:M` (`--final_density` then N/M, the allocation uniform) every allocated layer
keeps, at each pruning step, round(M * d_t) of every M consecutive inputs of every row (never fewer
than N), those of largest magnitude among the active ones, so the cubic is followed in whole steps
of the pattern and the final mask is exactly N:M (the decaying N:M of Kao et al. 2022 on Zhu &
Gupta's schedule).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch

from branches.sparse.common import ROW_HEADER as ROW_HEADER
from branches.sparse.common import (
    Grouping,
    SparseHparams,
    check_structure,
    grouping,
    sparse_summary,
    static_sibling,
    train_sparse,
)
from branches.sparse.hook import DynamicMaskHook
from branches.sparse.layers import (
    ALLOCATION_HELP,
    FIRST_HELP,
    OUTPUT_HELP,
    STRUCTURE_HELP,
    canonical_layer,
    fixed_densities,
)
from branches.sparse.schedule import gmp_density, gmp_steps
from foundations.errors import UserError
from foundations.hparams import Hparams, hparam
from pruning.allocation import ALLOCATIONS, check_density, kept_count, layer_densities
from pruning.mask import Mask
from pruning.nm import kept_per_group, nm_mask
from pruning.select import remove
from runs.branch import Branch
from training.hooks import TrainState

NAME = "gmp"
SUMMARY = "gradual magnitude pruning: prune by magnitude on a cubic schedule while training"


@dataclass
class GmpHparams(Hparams):
    _name = "Gradual Magnitude Pruning Hyperparameters"
    _description = "The cubic density schedule and how it is shared among the layers."

    final_density: float = hparam(help="fraction of the allocated weights kept at the end, in (0, 1]")
    initial_density: float = hparam(1.0, "density reached at the first pruning step")
    begin_step: str = hparam("0it", "the first pruning step t0")
    end_step: Optional[str] = hparam(None, "the last pruning step reaches --final_density (default: 3/4 of training)")
    prune_every: str = hparam("100it", "steps between pruning steps (Δt)")
    allocation: str = hparam("uniform", ALLOCATION_HELP + " (global: one magnitude ranking)", choices=ALLOCATIONS)
    first_layer: str = hparam("auto", FIRST_HELP)
    output_layer: str = hparam("auto", OUTPUT_HELP)
    structure: Optional[str] = hparam(None, STRUCTURE_HELP)

    def validate(self) -> None:
        self.structure, self.allocation = check_structure(self.structure, self.final_density, "final_density",
                                                          self.allocation, "uniform")
        if self.final_density is not None:
            check_density(self.final_density, "final_density")
            check_density(self.initial_density, "initial_density")
            if self.initial_density < self.final_density:
                raise UserError(f"--initial_density={self.initial_density} is below --final_density="
                                f"{self.final_density}: gradual pruning only removes weights")
        self.first_layer = canonical_layer(self.first_layer, "first_layer")
        self.output_layer = canonical_layer(self.output_layer, "output_layer")


BUNDLES = {"gmp": GmpHparams}


@dataclass(frozen=True)
class Schedule:
    begin: int
    end: int
    every: int

    @property
    def steps(self) -> set[int]:
        return set(gmp_steps(self.begin, self.end, self.every))


def schedule(branch: Branch) -> Schedule:
    h, trunk = branch.bundles["gmp"], branch.trunk
    begin = trunk.step(h.begin_step, "begin_step").iteration
    end = (trunk.step(h.end_step, "end_step").iteration if h.end_step is not None
           else math.floor(0.75 * trunk.end_step.iteration))
    every = trunk.step(h.prune_every, "prune_every").iteration
    if every <= 0:
        raise UserError(f"--prune_every={h.prune_every} must be at least 1it")
    if end < begin:
        raise UserError(f"--end_step ({end} it) is before --begin_step ({begin} it)")
    return Schedule(begin, end, every)


def targets(model: torch.nn.Module, h: GmpHparams) -> tuple[list[tuple[str, ...]], dict[tuple[str, ...], float],
                                                            dict[tuple[str, ...], float]]:
    """The groups ranked together, each with its initial and final density."""
    state = model.state_dict()
    names = list(model.prunable_layer_names)
    fixed = fixed_densities(model, h.first_layer, h.output_layer)
    allocated = [name for name in names if name not in fixed]
    groups: list[tuple[str, ...]] = [(name,) for name in fixed]
    final: dict[tuple[str, ...], float] = {(name,): density for name, density in fixed.items()}
    if h.allocation == "global":
        groups.append(tuple(allocated))
        final[tuple(allocated)] = h.final_density
    else:
        shapes = {name: tuple(state[name].shape) for name in allocated}
        for name, density in layer_densities(h.allocation, shapes, h.final_density).items():
            groups.append((name,))
            final[(name,)] = density
    initial = {group: max(h.initial_density, final[group]) for group in groups}
    return groups, initial, final


class GradualPruning(DynamicMaskHook):
    def __init__(self, mask: Mask, final_dir: Path, when: Schedule, groups, initial, final,
                 pattern: Optional[Grouping] = None):
        super().__init__(mask, final_dir)
        self.when, self.groups, self.initial, self.final = when, groups, initial, final
        self.pattern = pattern
        self.pruning_steps = when.steps

    def changes_at(self, iteration: int) -> bool:
        return iteration in self.pruning_steps

    def new_mask(self, state: TrainState) -> dict[str, torch.Tensor]:
        return prune_to_schedule(self.weights, self.mask, state.iteration, self.when, self.groups, self.initial,
                                 self.final, self.pattern)


def scheduled_count(group_size: int, iteration: int, when: Schedule, initial: float, final: float) -> int:
    """The weights of a group active after the pruning at `iteration` (the cubic at that step)."""
    density = gmp_density(iteration, when.begin, when.end, when.every, initial, final)
    return kept_count(group_size, density)


def prune_to_schedule(weights: dict[str, torch.Tensor], mask: dict[str, torch.Tensor], iteration: int,
                      when: Schedule, groups, initial, final,
                      pattern: Optional[Grouping] = None) -> dict[str, torch.Tensor]:
    """Remove, in every group, the active weights of smallest magnitude beyond its scheduled count
    (in an N:M layer of `pattern`: beyond its scheduled count of every M)."""
    counts = {}
    grouped = pattern.names if pattern is not None else frozenset()
    for group in groups:
        if group[0] in grouped:
            continue
        size = sum(weights[name].numel() for name in group)
        active = int(sum(int(mask[name].sum()) for name in group))
        counts[group] = max(active - scheduled_count(size, iteration, when, initial[group], final[group]), 0)
    scores = {name: weight.detach().abs() for name, weight in weights.items()}
    result = remove(scores, mask, counts)
    for group in groups:
        if group[0] in grouped:
            density = gmp_density(iteration, when.begin, when.end, when.every, initial[group], final[group])
            kept = kept_per_group(pattern.n, pattern.m, density)
            name = group[0]
            result[name] = nm_mask({name: scores[name]}, Mask({name: mask[name]}), kept, pattern.m)[name]
    return result


def initial_mask(branch: Branch) -> Mask:
    """The dense mask, pruned at once where the schedule's first step is step 0."""
    model = branch.trunk.initial_model()
    when = schedule(branch)
    h = branch.bundles["gmp"]
    groups, initial, final = targets(model, h)
    dense = Mask.ones_like(model)
    if 0 not in when.steps:
        return dense
    weights = {name: parameter for name, parameter in model.named_parameters() if name in dense}
    pattern = grouping(model, h.structure, h.first_layer, h.output_layer)
    return Mask(prune_to_schedule(weights, dict(dense.items()), 0, when, groups, initial, final, pattern))


def static_control(branch: Branch) -> Path:
    """The static random control at the final per-layer allocation rule and density."""
    h = branch.bundles["gmp"]
    control = SparseHparams(train_density=h.final_density, allocation=h.allocation, first_layer=h.first_layer,
                            output_layer=h.output_layer, structure=h.structure)
    control.validate()
    return static_sibling(branch, control)


def check(branch: Branch) -> None:
    h = branch.bundles["gmp"]
    schedule(branch)
    targets(branch.trunk.fresh_model(), h)
    grouping(branch.trunk.fresh_model(), h.structure, h.first_layer, h.output_layer)


def run(branch: Branch) -> list[list[str]]:
    h = branch.bundles["gmp"]
    when = schedule(branch)
    model = branch.trunk.fresh_model()
    groups, initial, final = targets(model, h)
    pattern = grouping(model, h.structure, h.first_layer, h.output_layer)
    return train_sparse(branch, lambda: initial_mask(branch),
                        lambda mask, final_dir: GradualPruning(mask, final_dir, when, groups, initial, final,
                                                               pattern),
                        static=static_control(branch))


def summary(branch: Branch) -> dict:
    return sparse_summary(branch, NAME, static_control(branch))
