"""Networks on the straight line between two trained networks, and the error barrier on it.

For weights W_a and W_b and alpha in [0, 1], the network at alpha is (1 - alpha) W_a + alpha W_b,
taken over every floating-point tensor of the state dict: weights, biases and the BatchNorm
running means and variances alike (what Frankle et al., ICML 2020, evaluated). Integer buffers
(BatchNorm's batch counter) cannot be averaged and come from the nearer endpoint. Pruned
weights are zero at both ends and so stay zero on the whole line.

With `bn_batches` (the branch's --reset_bn_stats, which later work showed can shrink the barrier
of BatchNorm networks) the running statistics of each interpolated network are recomputed from
one pass over the training set (torch.optim.swa_utils.update_bn) instead of interpolated.

The error barrier (the paper's instability) is the largest error on the path minus the mean of
the two endpoints' errors: never negative, never less than half the gap between the ends, and 0
only when the ends have the same error and nothing between them is worse. The barrier above the
chord (the excess over the straight line between the ends' errors) is kept beside it: it does not
count that gap.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable, Optional

import torch
from torch.optim.swa_utils import update_bn

from training.losses import Loss, evaluate


def alphas(points: int) -> list[float]:
    """`points` evenly spaced values from 0 to 1, both included, each the float nearest i / (points - 1)
    (numpy's linspace would give 0.30000000000000004 for 0.3)."""
    return [i / (points - 1) for i in range(points)]


def interpolate_states(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], alpha: float) -> dict[str, torch.Tensor]:
    """(1 - alpha) a + alpha b for every floating tensor; other tensors from the nearer endpoint.
    torch.lerp returns the endpoints exactly at alpha = 0 and 1."""
    if a.keys() != b.keys():
        raise ValueError(f"the two state dicts hold different tensors: {sorted(set(a) ^ set(b))}")
    nearer = a if alpha < 0.5 else b
    return {name: torch.lerp(a[name], b[name], alpha) if a[name].is_floating_point() else nearer[name].clone()
            for name in a}


def has_batchnorm(model: torch.nn.Module) -> bool:
    return any(isinstance(module, torch.nn.modules.batchnorm._BatchNorm) for module in model.modules())


def error_of(metrics: dict[str, float], task: str) -> float:
    """Test error: 1 - accuracy for classification, the loss (mean squared error) for regression."""
    return 1.0 - metrics["test_accuracy"] if task == "classification" else metrics["test_loss"]


def barrier(values: list[float]) -> float:
    """The largest value on the path minus the mean of its two ends (never negative, and at least
    half the gap between the ends: the paper's definition)."""
    return max(values) - (values[0] + values[-1]) / 2


def barrier_above_chord(alphas_: list[float], values: list[float]) -> float:
    """The largest excess over the straight line between the two ends' values,
    max over alpha of v(alpha) - ((1 - alpha) v(0) + alpha v(1)) (0 when the ends differ and the
    path is no worse than the chord; the definition of later work, e.g. Entezari et al., 2022)."""
    return max(v - ((1 - a) * values[0] + a * values[-1]) for a, v in zip(alphas_, values))


@dataclass
class Curve:
    """The evaluations along one line: one entry of `points` per alpha."""

    points: list[dict[str, float]]  # alpha, test_error, test_loss (and test_accuracy for classification)

    @property
    def error_barrier(self) -> float:
        return barrier([point["test_error"] for point in self.points])

    @property
    def loss_barrier(self) -> float:
        return barrier([point["test_loss"] for point in self.points])

    @property
    def error_barrier_above_chord(self) -> float:
        return barrier_above_chord([point["alpha"] for point in self.points],
                                   [point["test_error"] for point in self.points])


def evaluate_path(model: torch.nn.Module, state_a: dict[str, torch.Tensor], state_b: dict[str, torch.Tensor],
                  points: int, test_loader, loss: Loss,
                  bn_batches: Optional[Callable[[], Iterable]] = None) -> Curve:
    """Load each network on the line into `model` (whose architecture the states are of) and
    evaluate it on `test_loader`. `bn_batches`, when given, returns training batches (x, y)
    from which each network's BatchNorm statistics are recomputed first."""
    device = next(model.parameters()).device
    state_a = {name: tensor.to(device) for name, tensor in state_a.items()}
    state_b = {name: tensor.to(device) for name, tensor in state_b.items()}
    evaluated = []
    for alpha in alphas(points):
        model.load_state_dict(interpolate_states(state_a, state_b, alpha))
        if bn_batches is not None:
            update_bn(bn_batches(), model)
        metrics = evaluate(model, test_loader, loss)
        evaluated.append({"alpha": alpha, "test_error": error_of(metrics, loss.task), **metrics})
    return Curve(evaluated)
