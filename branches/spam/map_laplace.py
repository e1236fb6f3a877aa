"""The MAP comparison of the SpaM branches: the trunk's final weights and a Laplace at them.

The trunk trained under a weight decay wd on a mean loss over N examples, i.e. under a Gaussian
prior of precision delta = N x wd (pruning/scores/opd.py; N counts tokens for a language model); its
Laplace uses that fixed scalar prior
(or --map_prior_precision) and SpaM's curvature, over the parameters SpaM's posterior covers
(prior_training.posterior_names: a language model's prunable layers). Kept in the branch's map/ directory:
prior_precision.pt, posterior_precision.pt (as SpaM's) and laplace.json (delta, the curvature,
the log marginal likelihood where the prior is proper).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Optional

import torch
from torch import nn

from bayes import Prior, fit_curvature, log_marginal_likelihood, make_prior, posterior_precision_diagonal
from branches.spam.prior_training import (
    POSTERIOR_FILE,
    PRIOR_FILE,
    likelihood_of,
    posterior_names,
    read_precisions,
    training_size,
)
from branches.spam.sweep import Swept
from platforms.storage import save_torch, write_json
from pruning.scores.opd import scalar_prior, weight_decay_precision
from runs import run_files
from runs.trunk import Trunk
from training import checkpoint


def final_weights(trunk: Trunk, run_dir: Path, done: dict) -> nn.Module:
    """The trunk's architecture with the final weights of the finished run in `run_dir`."""
    model = trunk.fresh_model()
    final = run_files.final_step_of(done, trunk.iterations_per_epoch)
    model.load_state_dict(checkpoint.load_model_state(Path(run_dir) / checkpoint.model_filename(final)))
    return model


def map_network(trunk: Trunk, directory: Path, curvature: str, temperature: float,
                prior_precision: Optional[float]) -> Swept:
    """The MAP trunk's final weights and the Laplace at them with the trunk's fixed scalar prior,
    delta = N x weight decay unless `prior_precision` is given; kept in `directory` (map/)."""
    directory = Path(directory)
    model = final_weights(trunk, trunk.dir, trunk.done())
    stored = read_precisions(directory)
    if stored is not None:
        return Swept("map", model, stored[1])
    train = trunk.loader(True)
    delta = prior_precision if prior_precision is not None else \
        weight_decay_precision(trunk.desc.training.weight_decay, training_size(train))
    covered = posterior_names(model, trunk.info.task)
    named = {name: p for name, p in model.named_parameters() if p.requires_grad}
    names = list(named) if covered is None else list(covered)
    prior = scalar_prior(model, delta) if covered is None else _scalar_prior({n: named[n] for n in names}, delta)
    fitted = fit_curvature(model, train.batches(0), likelihood_of(trunk.desc.training, trunk.info.task), curvature,
                           posterior=covered)
    posterior = posterior_precision_diagonal(fitted, prior, names=names, temperature=temperature)
    log_marglik = log_marginal_likelihood(fitted, prior, temperature=temperature).item() if delta > 0 else None
    with torch.no_grad():
        priors = {name: lp.exp().contiguous().cpu() for name, lp in prior.log_precision().items()}
    trunk.platform.on_primary(_save, directory, priors, posterior,
                              {"prior_precision": delta, "curvature": curvature, "log_marglik": log_marglik})
    return Swept("map", model, posterior)


def _scalar_prior(params: dict[str, torch.Tensor], precision: float) -> Prior:
    """A scalar prior of `precision` over some parameters (a language model's prunable layers)."""
    prior = make_prior("scalar", params)
    with torch.no_grad():
        prior.log_delta.fill_(math.log(precision) if precision > 0 else -math.inf)
    return prior


def _save(directory: Path, priors: dict, posterior: dict, facts: dict) -> None:
    write_json(facts, directory / "laplace.json")
    save_torch(priors, directory / PRIOR_FILE)
    save_torch({name: p.cpu() for name, p in posterior.items()}, directory / POSTERIOR_FILE)
