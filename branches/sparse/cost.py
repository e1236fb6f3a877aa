"""Training FLOPs of a sparse-training run, as the RigL paper counts them (Evci et al. 2020, App. H).

A step over B examples costs B * 3 f: the forward pass f and a backward pass of 2 f (the gradient
with respect to the activations and to the weights), f being the forward FLOPs per example of the
network at its per-layer densities (training/flops.py: each layer's dense FLOPs times its density).
At a RigL update step the gradient with respect to the weights is dense: B * (2 f_S + f_D). The
dense trunk costs B * 3 f_D a step. What the mask looked like when is the run's `updates.json`
(the per-layer active counts from each iteration on).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

import torch

from training.flops import at_densities, forward_flops, layer_flops


def forward_at(model: torch.nn.Module, example: torch.Tensor, counts: Mapping[str, int]) -> float:
    """Forward FLOPs per example with each layer at counts[layer] active weights."""
    dense, layers = layer_flops(model, example, counts)
    return at_densities(dense, layers, densities_of(model, counts))


def densities_of(model: torch.nn.Module, counts: Mapping[str, int]) -> dict[str, float]:
    state = model.state_dict()
    return {name: float(count) / state[name].numel() if state[name].numel() else 1.0
            for name, count in counts.items()}


def examples_in_step(index: int, iterations_per_epoch: int, num_examples: int, batch_size: int) -> int:
    """Examples in the step of 0-based `index` (the last batch of an epoch may be short)."""
    return min(batch_size, num_examples - (index % iterations_per_epoch) * batch_size)


def training_flops(model: torch.nn.Module, example: torch.Tensor, history: Sequence[Sequence], end: int,
                   iterations_per_epoch: int, num_examples: int, batch_size: int,
                   dense_gradient_steps: Iterable[int] = ()) -> float:
    """FLOPs of steps 0..end-1 under the masks of `history` ([[from iteration, {layer: count}], ...]);
    the steps whose after-step iteration is in `dense_gradient_steps` pay a dense weight gradient."""
    marks = sorted((int(start), counts) for start, counts in history)
    dense, layers = layer_flops(model, example, {name for _, counts in marks for name in counts})
    costs = [at_densities(dense, layers, densities_of(model, counts)) for _, counts in marks]  # one counted pass
    dense_steps = set(dense_gradient_steps)
    total = 0.0
    for position, (start, _) in enumerate(marks):
        stop = marks[position + 1][0] if position + 1 < len(marks) else end
        f = costs[position]
        for index in range(start, min(stop, end)):
            per_example = 2 * f + dense if index + 1 in dense_steps else 3 * f
            total += per_example * examples_in_step(index, iterations_per_epoch, num_examples, batch_size)
    return total


def dense_training_flops(model: torch.nn.Module, example: torch.Tensor, end: int, iterations_per_epoch: int,
                         num_examples: int, batch_size: int) -> float:
    """The dense trunk's training FLOPs over steps 0..end-1."""
    full, part = divmod(end, iterations_per_epoch)
    examples = full * num_examples + sum(examples_in_step(i, iterations_per_epoch, num_examples, batch_size)
                                         for i in range(part))
    return 3 * forward_flops(model, example) * examples


def ratio(flops: float, dense: float) -> float:
    return flops / dense if dense and math.isfinite(dense) else float("nan")
