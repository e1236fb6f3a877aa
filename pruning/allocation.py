"""Layer allocation: how a target density is shared among the layers of a network.

Three allocations, each giving every layer a number of weights to keep:
  uniform  every allocated layer at the target density;
  erk      Erdős–Rényi-Kernel (Evci et al. 2020, RigL): layer l keeps the fraction eps * p_l of its
           weights, p_l = sum(shape_l) / prod(shape_l) (for a conv weight, out + in + kh + kw over
           their product), eps chosen so that the allocated layers keep the target density overall.
           A layer whose eps * p_l would exceed 1 is made dense and eps is solved again over the
           others, with the weights the dense layer keeps beyond the target taken from them, until
           none exceeds 1 (the redistribution of the RigL code's `get_sparsities_erdos_renyi`);
  global   one magnitude threshold over all allocated layers (needs the weights: `global_counts`).
LAMP (Lee et al. 2021, `lamp_removals`) is a pruning scope rather than a density map: one global
threshold on each weight's LAMP score, its w² over the sum of w² of the layer's weights at least
as large, so every layer keeps its largest weight and the layers' shares follow their spectra.
Layers given a density of their own (`fixed`: the RigL code's custom sparsity map, which is how
its first and output layers are treated) keep that density and are left out of the budget: the
target density is the density of the allocated layers alone, as in the RigL code.

A layer at density d keeps n - floor((1 - d) * n) of its n weights (the RigL code's
`get_n_zeros`), so the counts are exact integers and the same everywhere.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch

from foundations.errors import UserError
from pruning.mask import Mask

ALLOCATIONS = ("uniform", "erk", "global")
Shapes = Mapping[str, Sequence[int]]


def check_density(density: float, flag: str = "density") -> float:
    if not 0 < density <= 1:
        raise UserError(f"--{flag}={density} is outside (0, 1]: give the fraction of the weights kept, such as 0.1")
    return density


def check_allocation(allocation: str) -> str:
    if allocation not in ALLOCATIONS:
        raise UserError(f"allocation {allocation!r} is unknown: use one of {', '.join(ALLOCATIONS)}")
    return allocation


def kept_count(numel: int, density: float) -> int:
    """How many of `numel` weights a layer at `density` keeps: numel - floor((1 - density) * numel)
    (a tolerance of 1e-9 absorbs the float error of 1 - density)."""
    return numel - math.floor((1.0 - density) * numel + 1e-9)


def erk_probability(shape: Sequence[int]) -> float:
    """The Erdős–Rényi-Kernel raw probability of a layer: the sum of its dimensions over their product."""
    return sum(shape) / math.prod(shape)


def erk_densities(shapes: Shapes, density: float, fixed: Mapping[str, float] = {}) -> dict[str, float]:
    """Per-layer densities of ERK at overall `density` over the layers not in `fixed`."""
    check_density(density)
    allocated = [name for name in shapes if name not in fixed]
    dense: set[str] = set()
    while True:
        # eps * sum_{sparse} p_l n_l = density * sum_{sparse} n_l - (1 - density) * sum_{dense} n_l
        rhs, divisor = 0.0, 0.0
        for name in allocated:
            numel = math.prod(shapes[name])
            if name in dense:
                rhs -= numel - kept_count(numel, density)
            else:
                rhs += kept_count(numel, density)
                divisor += erk_probability(shapes[name]) * numel
        sparse = [name for name in allocated if name not in dense]
        if not sparse:
            break
        eps = rhs / divisor
        highest = max(erk_probability(shapes[name]) for name in sparse)
        if eps * highest <= 1:
            break
        dense |= {name for name in sparse if erk_probability(shapes[name]) == highest}
    result = {}
    for name in shapes:
        if name in fixed:
            result[name] = fixed[name]
        elif name in dense:
            result[name] = 1.0
        else:
            result[name] = eps * erk_probability(shapes[name])
    return result


def uniform_densities(shapes: Shapes, density: float, fixed: Mapping[str, float] = {}) -> dict[str, float]:
    check_density(density)
    return {name: fixed.get(name, density) for name in shapes}


def layer_densities(allocation: str, shapes: Shapes, density: float,
                    fixed: Mapping[str, float] = {}) -> dict[str, float]:
    """Per-layer densities of a `uniform` or `erk` allocation (`global` depends on the weights)."""
    if check_allocation(allocation) == "global":
        raise ValueError("the global allocation depends on the weights: use global_counts")
    return (erk_densities if allocation == "erk" else uniform_densities)(shapes, density, fixed)


def counts_of(shapes: Shapes, densities: Mapping[str, float]) -> dict[str, int]:
    """The number of weights each layer keeps at its density."""
    return {name: kept_count(math.prod(shapes[name]), densities[name]) for name in shapes}


def global_counts(weights: Mapping[str, torch.Tensor], density: float,
                  fixed: Mapping[str, float] = {}) -> dict[str, int]:
    """Per-layer counts of one magnitude threshold over the layers not in `fixed`: the
    kept_count(total, density) largest |w| among them (ties to the lower index, layers in order)."""
    check_density(density)
    allocated = [name for name in weights if name not in fixed]
    counts = {name: kept_count(weights[name].numel(), fixed[name]) for name in weights if name in fixed}
    if allocated:
        flat = torch.cat([weights[name].detach().abs().reshape(-1).float().cpu() for name in allocated])
        keep = kept_count(flat.numel(), density)
        chosen = torch.zeros(flat.numel(), dtype=torch.bool)
        chosen[torch.sort(flat, descending=True, stable=True).indices[:keep]] = True
        for name, piece in zip(allocated, chosen.split([weights[name].numel() for name in allocated])):
            counts[name] = int(piece.sum())
    return {name: counts[name] for name in weights}


def allocate(allocation: str, weights: Mapping[str, torch.Tensor], density: float,
             fixed: Mapping[str, float] = {}) -> dict[str, int]:
    """Per-layer kept counts of any allocation."""
    if check_allocation(allocation) == "global":
        return global_counts(weights, density, fixed)
    shapes = {name: tuple(weight.shape) for name, weight in weights.items()}
    return counts_of(shapes, layer_densities(allocation, shapes, density, fixed))


def random_mask(shapes: Shapes, counts: Mapping[str, int], seed: int) -> Mask:
    """Each layer keeps exactly counts[layer] weights at places drawn from `seed` (on the CPU, so
    the mask is the same on every device)."""
    generator = torch.Generator().manual_seed(seed)
    tensors = {}
    for name, shape in shapes.items():
        numel = math.prod(shape)
        flat = torch.zeros(numel, dtype=torch.bool)
        flat[torch.randperm(numel, generator=generator)[:counts[name]]] = True
        tensors[name] = flat.view(*shape)
    return Mask(tensors)


def lamp_scores(weights: torch.Tensor) -> torch.Tensor:
    """LAMP scores (Lee et al. 2021) of one layer's weights (a flat tensor): with the weights sorted
    by w² ascending (ties to the lower index), the score of the u-th is w_u² / sum_{v >= u} w_v².
    A weight whose tail sums to zero (all zeros from it on) scores 0."""
    squared = weights.detach().double().reshape(-1) ** 2
    order = torch.sort(squared, stable=True).indices
    ordered = squared[order]
    tails = ordered.flip(0).cumsum(0).flip(0)
    result = torch.zeros_like(squared)
    result[order] = torch.where(tails > 0, ordered / tails.clamp_min(torch.finfo(torch.float64).tiny), 0.0)
    return result


def lamp_removals(model: torch.nn.Module, mask: Mask, alive: Mapping[tuple[str, ...], int], fraction: float,
                  data: object = None) -> dict[tuple[str, ...], int]:
    """{(layer,): weights that layer loses} when round(fraction * alive) of the alive weights go by
    one ranking of their LAMP scores across the layers (each layer's scores over its alive weights
    only; ties to the earlier layer, then the lower index). The weights are the model's."""
    state = model.state_dict()
    names = [group[0] for group in alive]
    pieces = [lamp_scores(state[name].detach()[mask[name].to(state[name].device)]).cpu() for name in names]
    flat = torch.cat(pieces) if pieces else torch.zeros(0, dtype=torch.float64)
    chosen = torch.zeros(flat.numel(), dtype=torch.bool)
    chosen[torch.sort(flat, stable=True).indices[:round(fraction * flat.numel())]] = True
    counts = [int(piece.sum()) for piece in chosen.split([piece.numel() for piece in pieces])]
    return {group: count for group, count in zip(alive, counts)}
