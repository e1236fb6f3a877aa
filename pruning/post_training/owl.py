"""OWL (Yin et al. 2024, "Outlier Weighed Layerwise Sparsity"): layerwise sparsities from the
share of outliers of the Wanda metric.

For every step (calibration.py: a block of a transformer, a layer of an MLP or CNN; the paper's
"layer" is a decoder block) the Wanda metric |W_ij| · ‖X_j‖₂ of all its alive weights is pooled,
with inputs captured through the unpruned network (as OWL's code does before it prunes), and its
outlier ratio D is the fraction of entries above M times their mean (M = `threshold`, the paper's
Hyper_m). The ratios are min-max scaled to [0, 2λ] and shifted to mean 1 - sparsity (the
paper's code: `(D - min) / (max - min) * 2λ - mean + (1 - sparsity)`), which is each step's
density, so a step with more outliers keeps more weights, within ±λ of the target. One deviation,
for networks whose steps differ in size (the paper's blocks are all alike): the mean is weighted
by the steps' alive weights, so that the network keeps exactly the target overall (up to
rounding); for equal steps it is the paper's mean. Densities are clipped to [0, 1]. Defaults
M = 5 and λ = 0.08 are the OWL code's settings for LLaMA (its scripts' `--Hyper_m 5 --Lamda 0.08`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Union

import torch
from torch import nn

from foundations.errors import UserError
from pruning.allocation import kept_count
from pruning.mask import Mask
from pruning.post_training.calibration import (
    DEFAULT_EXAMPLES,
    CalibrationData,
    calibration_examples,
    capture,
    masked_network,
    pruning_steps,
)
from pruning.post_training.wanda import wanda_metric
from pruning.scores.base import ScoringData

DEFAULT_THRESHOLD = 5.0  # M
DEFAULT_LAMBDA = 0.08  # λ


def outlier_ratio(metrics: Sequence[torch.Tensor], threshold: float) -> float:
    """The fraction of the pooled entries above `threshold` times their mean."""
    pooled = torch.cat([metric.reshape(-1).double() for metric in metrics])
    if pooled.numel() == 0:
        return 0.0
    return float((pooled > threshold * pooled.mean()).double().mean())


def owl_densities(ratios: Sequence[float], sizes: Sequence[int], density: float, lam: float) -> list[float]:
    """Each step's density from its outlier ratio (see the module docstring)."""
    ratios = torch.tensor(list(ratios), dtype=torch.float64)
    weights = torch.tensor(list(sizes), dtype=torch.float64)
    spread = ratios.max() - ratios.min() if ratios.numel() else torch.tensor(0.0)
    scaled = (ratios - ratios.min()) / spread * 2 * lam if spread > 0 else torch.zeros_like(ratios)
    mean = (scaled * weights).sum() / weights.sum() if weights.sum() > 0 else scaled.mean()
    return (scaled - mean + density).clamp(0.0, 1.0).tolist()


def as_calibration(data: Union[CalibrationData, ScoringData]) -> CalibrationData:
    """Calibration inputs from either kind of data: ScoringData draws DEFAULT_EXAMPLES of them from
    its training loader with its seed."""
    if isinstance(data, CalibrationData):
        return data
    if data is None or data.examples is None:
        raise UserError("--prune_scope=owl reads calibration inputs from the training split, which this pruning "
                        "call was not given: use another --prune_scope here")
    inputs = calibration_examples(data.examples, DEFAULT_EXAMPLES, data.seed)
    return CalibrationData(inputs, data.batch_size or 32)


def step_outlier_ratios(model: nn.Module, mask: Mask, names: Sequence[str], data: CalibrationData,
                        threshold: float = DEFAULT_THRESHOLD) -> tuple[list[list[str]], list[float]]:
    """(steps, each step's outlier ratio) of the alive weights of `names`, inputs through `model`
    under `mask` unpruned."""
    net = masked_network(model, mask)
    parameters = dict(net.named_parameters())
    steps = pruning_steps(net, names)
    ratios = []
    for step in steps:
        statistics = capture(net, step, data, gram=False)
        metrics = []
        for name in step:
            metric = wanda_metric(parameters[name], statistics.squares[name].to(parameters[name].device))
            metrics.append(metric[mask[name].to(metric.device)])
        ratios.append(outlier_ratio(metrics, threshold))
    return steps, ratios


def owl_removals(model: nn.Module, mask: Mask, alive: Mapping[tuple[str, ...], int], fraction: float,
                 data: Union[CalibrationData, ScoringData], *, threshold: float = DEFAULT_THRESHOLD,
                 lam: float = DEFAULT_LAMBDA) -> dict[tuple[str, ...], int]:
    """{(layer,): weights that layer loses} at OWL's layerwise densities for an overall removal of
    `fraction` of the alive weights (the keys of `alive`, one layer each, as rounds.erk_removals)."""
    names = [group[0] for group in alive]
    if not names:
        return {}
    steps, ratios = step_outlier_ratios(model, mask, names, as_calibration(data), threshold)
    sizes = [sum(alive[(name,)] for name in step) for step in steps]
    densities = owl_densities(ratios, sizes, 1.0 - fraction, lam)
    density_of = {name: density for step, density in zip(steps, densities) for name in step}
    return {(name,): alive[(name,)] - kept_count(alive[(name,)], density_of[name]) for name in names}
