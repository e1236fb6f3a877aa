"""Laplace marginal likelihood, learnable priors and OPD scores (the math under SpaM).

Typical use from a training loop:
    prior = make_prior("unit", model)                 # add prior.penalty(model, n_data) to the loss
    if schedule.due(epoch):
        curv, value = fit_and_update_prior(model, batches, prior, structure="kfac", mask=mask)
    scores = opd_scores(curv, prior)                  # {weight name: scores shaped like the weight}
"""

from bayes.curvature import STRUCTURES, Curvature, KronBlock, fit_curvature
from bayes.laplace import MarglikTerms, log_marginal_likelihood, marglik_terms
from bayes.marglik import MarglikSchedule, fit_and_update_prior, update_prior
from bayes.opd import opd_scores, posterior_precision_diagonal, unit_scores
from bayes.priors import PRIOR_KINDS, Prior, make_prior

__all__ = [
    "STRUCTURES",
    "PRIOR_KINDS",
    "Curvature",
    "KronBlock",
    "MarglikSchedule",
    "MarglikTerms",
    "Prior",
    "fit_and_update_prior",
    "fit_curvature",
    "log_marginal_likelihood",
    "make_prior",
    "marglik_terms",
    "opd_scores",
    "posterior_precision_diagonal",
    "unit_scores",
    "update_prior",
]
