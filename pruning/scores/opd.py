"""opd: Optimal Posterior Damage, theta^2 * diag(posterior precision) (Dhahri et al., 2024).

A Laplace approximation at the scored weights: the diagonal GGN of the negative log likelihood,
summed over the whole training set (unshuffled, batch by batch), plus the precision of a scalar
Gaussian prior. The prior is the one the training objective implied: a weight decay wd on a mean
loss over N examples is a prior of precision delta = N * wd (its gradient wd * theta equals
delta * theta / N), so a trunk trained without weight decay scores with a flat prior (delta = 0,
OPD = theta^2 * H_ii). Pruned weights are left out of the posterior and score 0.

The weight decay is read from `ScoringData.weight_decay` (the oneshot branch passes the trunk's;
None counts as 0). Works at any step, like every other score: at initialization it is the Laplace
of the untrained network.
"""

from __future__ import annotations

import math
from typing import Optional

import torch
from torch import nn

from bayes import fit_curvature, make_prior
from bayes import opd_scores as posterior_damage
from bayes.priors import Prior
from foundations.errors import UserError
from pruning.mask import Mask
from pruning.scores.base import ScoringData

NAME = "opd"
SUMMARY = "Optimal Posterior Damage: w^2 times the Laplace posterior precision, on the training set"

CURVATURE = "diag_ggn"


def weight_decay_precision(weight_decay: Optional[float], n_data: int) -> float:
    """The prior precision N * wd that a weight decay on a mean loss over N examples stands for."""
    return (weight_decay or 0.0) * n_data


def scalar_prior(model: nn.Module, precision: float) -> Prior:
    """A scalar prior of `precision` over every trainable parameter; 0 is the flat prior (log = -inf)."""
    prior = make_prior("scalar", model, init_precision=1.0)
    with torch.no_grad():
        prior.log_delta.fill_(math.log(precision) if precision > 0 else -math.inf)
    return prior


def opd_scores(model: nn.Module, mask: Mask, data: Optional[ScoringData]) -> dict[str, torch.Tensor]:
    loader = getattr(data, "examples", None)
    if loader is None or not hasattr(loader, "batches"):
        raise ValueError("opd needs the training set: pass ScoringData(examples=<training loader>)")
    if getattr(loader, "task", None) == "language_modeling":
        raise UserError("opd's Laplace takes (batch, classes) outputs, and a language model's are per position: "
                        "use magnitude, random, snipN or graspN")
    likelihood = "regression" if getattr(loader, "task", "classification") == "regression" else "classification"
    curvature = fit_curvature(model, loader.batches(0), likelihood, CURVATURE,
                              mask={name: alive for name, alive in mask.items()})
    precision = weight_decay_precision(data.weight_decay, loader.num_examples)
    return posterior_damage(curvature, scalar_prior(model, precision), names=list(mask.keys()))


SCORE = opd_scores
