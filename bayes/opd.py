"""Optimal Posterior Damage: which weights the posterior says can go.

OPD_i = theta_i^2 * P_ii with P the Laplace posterior precision: the weight's magnitude measured
in posterior standard deviations (squared). Low OPD = small and uncertain = prune first.
P_ii is exact for diagonal curvatures; for KFAC it is the diagonal of s G kron A + diag(delta),
i.e. s * diag(G)[o] * diag(A)[i] + delta[o, i], exactly (no eigenbasis approximation).

Scores come per weight in the weight's shape, keyed by state_dict name, as the pruning selection
takes them. Masked (already pruned) weights score 0. Unit scores sum a layer's scores over
everything but the first dimension: one per output neuron (Linear) or filter (Conv2d).
"""

from typing import Iterable

import torch

from bayes.curvature import Curvature
from bayes.laplace import curvature_scale
from bayes.priors import Prior
from foundations.errors import UserError


def _likelihood_diagonal(curvature: Curvature) -> dict[str, torch.Tensor]:
    diagonal = dict(curvature.diagonal)
    for block in curvature.kron:
        g, a = block.G.diagonal(), block.A.diagonal()
        diagonal[block.weight] = torch.outer(g, a).reshape(block.weight_shape)
        if block.bias is not None:
            diagonal[block.bias] = g.clone()
    return diagonal


def posterior_precision_diagonal(
    curvature: Curvature,
    prior: Prior,
    names: Iterable[str] | None = None,
    sigma_noise: float | torch.Tensor = 1.0,
    temperature: float = 1.0,
) -> dict[str, torch.Tensor]:
    """diag(P) for each named parameter (default: the prunable weights), in its shape.

    This is also the precision-only pruning score. Masked entries are 0.
    """
    names = tuple(curvature.prunable if names is None else names)
    unknown = [n for n in names if n not in curvature.theta]
    if unknown:
        raise UserError(f"no posterior for {unknown}: they are not parameters the curvature was fitted on")
    factor = curvature_scale(curvature, sigma_noise, temperature)
    likelihood_diagonal = _likelihood_diagonal(curvature)
    log_delta = prior.log_precision()
    result = {}
    with torch.no_grad():
        for name in names:
            precision = factor * likelihood_diagonal[name] + log_delta[name].exp()
            kept = curvature.kept(name)
            result[name] = precision * kept if kept is not None else precision
    return result


def opd_scores(
    curvature: Curvature,
    prior: Prior,
    names: Iterable[str] | None = None,
    sigma_noise: float | torch.Tensor = 1.0,
    temperature: float = 1.0,
) -> dict[str, torch.Tensor]:
    """OPD = theta*^2 * diag(P) per weight (default: the prunable weights), in the weights' shapes."""
    precision = posterior_precision_diagonal(curvature, prior, names, sigma_noise, temperature)
    return {name: curvature.theta[name].square() * p for name, p in precision.items()}


def unit_scores(scores: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Per output unit (row of a weight matrix, filter of a conv) the sum of its weights' scores."""
    return {name: s.reshape(s.shape[0], -1).sum(1) if s.ndim else s for name, s in scores.items()}
