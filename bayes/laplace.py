"""The Laplace approximation to the log marginal likelihood, for a fitted curvature and a prior.

    log p(D) ~= log p(D | theta*) - 1/2 theta*^T P0 theta* - 1/2 (log det P - log det P0)

with P0 = diag(delta) the prior precision and P = H / (sigma^2 T) + P0 the posterior precision
(H the curvature of the unit-noise negative log likelihood, T the temperature). The log
likelihood is -loss / (sigma^2 T), minus N * outputs * log(sigma sqrt(2 pi)) for regression.
This is laplace-torch's formula term for term, so the two agree where both apply.

Determinants per structure
  diagonal (diag_ggn, diag_ef, and the non-Kronecker parameters of kfac): exact.
  kfac, prior constant over the tensor (scalar, layer): exact in the Kronecker eigenbasis,
      log det (s G kron A + delta I) = sum_ab log(s lam_a mu_b + delta).
  kfac, any other prior (parameter, unit): the *eigenbasis approximation*: P is replaced by
      its diagonal in the Kronecker eigenbasis Q = U_G kron U_A, whose entries are
      s lam_a mu_b + delta~_ab with delta~ = (U_G o U_G)^T Delta (U_A o U_A) (o: elementwise
      square, Delta: the precisions as an out x in matrix). By Hadamard's inequality this
      over-estimates log det P; it is exact when Delta is constant.

Masked weights are left out of every term. In the Kronecker case, where a weight matrix cannot
lose single entries and stay Kronecker, each eigen-direction ab is weighted by its mass on kept
entries, m_ab = ((U_G o U_G)^T M (U_A o U_A))_ab, which sums to the number kept:
      log det P_kept ~= sum_ab m_ab log(s lam_a mu_b + delta~_ab / m_ab),  delta~ from Delta * M.
This is exact without a mask and whenever the mask is aligned with the eigenbasis, and the
masked precisions never enter it.
"""

import math
from dataclasses import dataclass

import torch

from bayes.curvature import Curvature, KronBlock
from bayes.priors import Prior
from foundations.errors import UserError

_MIN_MASS = 1e-12  # eigen-directions with less kept mass than this are left out


@dataclass
class MarglikTerms:
    """The pieces of the Laplace log marginal likelihood (all over kept parameters)."""

    log_likelihood: torch.Tensor  # log p(D | theta*)
    scatter: torch.Tensor  # theta*^T P0 theta*
    log_det_prior: torch.Tensor  # log det P0
    log_det_posterior: torch.Tensor  # log det P

    @property
    def log_prior(self) -> torch.Tensor:
        """log p(theta*) up to the -k/2 log(2 pi) that cancels against the posterior's."""
        return 0.5 * (self.log_det_prior - self.scatter)

    @property
    def value(self) -> torch.Tensor:
        return self.log_likelihood - 0.5 * (self.scatter + self.log_det_posterior - self.log_det_prior)


def curvature_scale(
    curv: Curvature, sigma_noise: float | torch.Tensor = 1.0, temperature: float = 1.0
) -> torch.Tensor:
    """s = 1 / (sigma^2 T), the factor on the unit-noise curvature in the posterior precision."""
    if curv.likelihood == "classification" and not (
        isinstance(sigma_noise, (int, float)) and sigma_noise == 1
    ):
        raise UserError("sigma_noise applies to regression only; leave it at 1 for classification")
    theta = next(iter(curv.theta.values()))
    sigma = torch.as_tensor(sigma_noise, dtype=theta.dtype, device=theta.device)
    return 1.0 / (sigma.square() * temperature)


def log_likelihood(
    curv: Curvature, sigma_noise: float | torch.Tensor = 1.0, temperature: float = 1.0
) -> torch.Tensor:
    """log p(D | theta*) of the (tempered) likelihood, from the loss summed at fit time."""
    log_lik = -curvature_scale(curv, sigma_noise, temperature) * curv.loss
    if curv.likelihood == "regression":
        sigma = torch.as_tensor(sigma_noise, dtype=log_lik.dtype, device=log_lik.device)
        log_lik = log_lik - curv.n_data * curv.n_outputs * torch.log(sigma * math.sqrt(2 * math.pi))
    return log_lik


def _diagonal_terms(curv: Curvature, log_delta: dict[str, torch.Tensor], factor):
    scatter = log_det_prior = log_det_post = 0.0
    for name, h in curv.diagonal.items():
        lp = log_delta[name].reshape(-1)
        delta = lp.exp()
        log_post = torch.log(factor * h.reshape(-1) + delta)
        scatter = scatter + torch.dot(delta, curv.theta_squared(name))  # masked theta* are 0
        kept = curv.kept_weights(name)
        if kept is None:
            log_det_prior = log_det_prior + lp.sum()
            log_det_post = log_det_post + log_post.sum()
        else:
            log_det_prior = log_det_prior + torch.dot(lp, kept)
            log_det_post = log_det_post + torch.dot(log_post, kept)
    return scatter, log_det_prior, log_det_post


def _kron_log_det(
    lam_g: torch.Tensor,
    u_g: torch.Tensor,
    lam_a: torch.Tensor,
    u_a: torch.Tensor,
    log_delta: torch.Tensor,
    kept: torch.Tensor | None,
    constant: bool,
    factor,
) -> torch.Tensor:
    """log det of the posterior block for one out x in parameter matrix (see the module docstring)."""
    eig = factor * torch.outer(lam_g, lam_a)
    if kept is None and constant:
        return torch.log(eig + log_delta.reshape(-1)[0].exp()).sum()
    sq_g, sq_a = u_g.square(), u_a.square()
    delta = log_delta.exp()
    if kept is None:
        return torch.log(eig + sq_g.T @ delta @ sq_a).sum()
    kept = kept.to(delta.dtype)
    mass = sq_g.T @ kept @ sq_a
    rotated = sq_g.T @ (delta * kept) @ sq_a
    present = mass > _MIN_MASS
    safe_mass = torch.where(present, mass, torch.ones_like(mass))
    inside = torch.where(present, safe_mass * eig + rotated, torch.ones_like(mass))
    return torch.where(present, safe_mass * (inside.log() - safe_mass.log()), 0.0).sum()


def _kron_terms(curv: Curvature, block: KronBlock, log_delta, constant: bool, factor):
    lam_g, u_g, lam_a, u_a = block.eigen()
    one = torch.ones(1, 1, dtype=lam_a.dtype, device=lam_a.device)
    parts = [(block.weight, lam_a, u_a)]
    if block.bias is not None:
        parts.append((block.bias, one[0], one))
    scatter = log_det_prior = log_det_post = 0.0
    for name, lam_in, u_in in parts:
        rows = block.weight_shape[0]
        lp = log_delta[name].reshape(rows, -1)
        kept = curv.kept(name)
        kept = None if kept is None else kept.reshape(rows, -1)
        log_det_post = log_det_post + _kron_log_det(lam_g, u_g, lam_in, u_in, lp, kept, constant, factor)
        weighted = lp.exp() * curv.theta[name].reshape(rows, -1).square()
        if kept is not None:
            lp, weighted = lp * kept, weighted * kept
        scatter = scatter + weighted.sum()
        log_det_prior = log_det_prior + lp.sum()
    return scatter, log_det_prior, log_det_post


def marglik_terms(
    curv: Curvature, prior: Prior, sigma_noise: float | torch.Tensor = 1.0, temperature: float = 1.0
) -> MarglikTerms:
    """The Laplace log marginal likelihood's terms; differentiable in the prior (and sigma)."""
    if set(prior.names) != set(curv.theta):
        raise UserError(
            "the prior and the curvature cover different parameters; build the prior with "
            "make_prior(kind, model) on the same model the curvature was fitted on"
        )
    factor = curvature_scale(curv, sigma_noise, temperature)
    log_lik = log_likelihood(curv, sigma_noise, temperature)
    log_delta = prior.log_precision()
    scatter, log_det_prior, log_det_post = _diagonal_terms(curv, log_delta, factor)
    for block in curv.kron:
        s, p, q = _kron_terms(curv, block, log_delta, prior.constant_per_tensor, factor)
        scatter, log_det_prior, log_det_post = scatter + s, log_det_prior + p, log_det_post + q
    def as_tensor(v):
        return torch.as_tensor(v, dtype=log_lik.dtype, device=log_lik.device)
    return MarglikTerms(log_lik, as_tensor(scatter), as_tensor(log_det_prior), as_tensor(log_det_post))


def log_marginal_likelihood(
    curv: Curvature, prior: Prior, sigma_noise: float | torch.Tensor = 1.0, temperature: float = 1.0
) -> torch.Tensor:
    """Laplace approximation of log p(D | prior) at the fitted theta* (see the module docstring)."""
    return marglik_terms(curv, prior, sigma_noise, temperature).value
