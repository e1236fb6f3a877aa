"""Structured pruning: remove whole units, ranked by the norm of their incoming weights.

A unit is an output slice of a weight: a neuron is a row of a Linear weight (structure
'neurons'), a filter is an output channel of a convolution weight (structure 'filters'); layers of
the other kind are left alone. Units are ranked within each layer (their norms' scale depends on
the layer's fan-in, so a global ranking would mostly empty the widest layers) by the L1 or L2 norm
of their unpruned incoming weights, or at random; each considered layer loses round(fraction *
its live units), ties going to the lower unit index. Output layers are never pruned this way:
removing an output unit would delete a class.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

from foundations.errors import UserError
from pruning.mask import Mask
from pruning.select import alive_counts, make_groups, remove
from pruning.validate import check_prune_fraction, considered_layers

STRUCTURES = ("neurons", "filters")
NORMS = ("l1", "l2", "random")


def _is_unit_layer(weight: torch.Tensor, structure: str) -> bool:
    return weight.dim() == 2 if structure == "neurons" else weight.dim() > 2


def prune_units(model: nn.Module, mask: Mask, fraction: float, structure: str = "neurons",
                norm: str = "l1", seed: int = 0, layers_to_ignore: Iterable[str] = ()) -> Mask:
    """Remove `fraction` of the live units of every considered layer (zeroing all their weights)."""
    check_prune_fraction(fraction)
    if structure not in STRUCTURES:
        raise UserError(f"prune_structure={structure!r} is not a unit: use {', '.join(STRUCTURES)} "
                        "(unstructured pruning goes through prune())")
    if norm not in NORMS:
        raise UserError(f"unit norm {norm!r} is unknown: use one of {', '.join(NORMS)}")
    state = model.state_dict()
    outputs = set(getattr(model, "output_layer_names", ()))
    names = [name for name in considered_layers(mask.keys(), layers_to_ignore)
             if name not in outputs and _is_unit_layer(state[name], structure)]
    if not names:
        kind = "Linear" if structure == "neurons" else "convolution"
        raise UserError(f"prune_structure={structure} found no layer to prune: it needs {kind} weights "
                        "besides the output layer and the ignored ones")
    live_units = {name: mask[name].flatten(1).any(dim=1) for name in names}
    generator = torch.Generator().manual_seed(seed)
    unit_scores = {}
    for name in names:
        if norm == "random":
            unit_scores[name] = torch.rand(live_units[name].shape, generator=generator)
        else:
            incoming = (state[name].detach() * mask[name].to(state[name].device)).flatten(1)
            unit_scores[name] = torch.linalg.vector_norm(incoming, ord=1 if norm == "l1" else 2, dim=1)
    groups = make_groups(names, "layerwise")
    counts = {group: round(fraction * alive) for group, alive in alive_counts(live_units, groups).items()}
    kept_units = remove(unit_scores, live_units, counts)
    shape = {name: (-1,) + (1,) * (mask[name].dim() - 1) for name in names}
    return Mask({name: alive & kept_units[name].view(shape[name]) if name in kept_units else alive
                 for name, alive in mask.items()})
