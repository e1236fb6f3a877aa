"""bayes.marglik: the hyperparameter update reaches MacKay's fixed point; the schedule's calendar."""

import pytest
import torch
from torch import nn

from bayes.curvature import fit_curvature
from bayes.laplace import log_marginal_likelihood
from bayes.marglik import MarglikSchedule, fit_and_update_prior, update_prior
from bayes.priors import make_prior
from foundations.errors import UserError


def fitted(structure: str = "diag_ggn"):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 3)).double()
    g = torch.Generator().manual_seed(1)
    x = torch.randn(30, 4, generator=g, dtype=torch.float64)
    y = torch.randint(0, 3, (30,), generator=g)
    batches = [(x[:16], y[:16]), (x[16:], y[16:])]
    return model, batches, fit_curvature(model, batches, "classification", structure)


def test_update_reaches_the_scalar_prior_fixed_point():
    """At the optimum delta |theta|^2 + sum_i delta / (h_i + delta) = P (d/d log delta = 0)."""
    model, _, curv = fitted()
    prior = make_prior("scalar", model, init_precision=1.0)
    before = log_marginal_likelihood(curv, prior).detach()
    after = update_prior(curv, prior, steps=300, lr=0.1)
    assert after > before
    delta = prior.log_delta.detach().exp()
    h = torch.cat([d.reshape(-1) for d in curv.diagonal.values()])
    theta_sq = sum(t.square().sum() for t in curv.theta.values())
    stationarity = delta * theta_sq + (delta / (h + delta)).sum()
    torch.testing.assert_close(stationarity, torch.tensor(float(h.numel()), dtype=torch.float64), rtol=1e-4, atol=0)


def test_update_returns_the_marglik_at_the_new_prior_and_zero_steps_change_nothing():
    model, _, curv = fitted("kfac")
    prior = make_prior("unit", model)
    initial = [p.detach().clone() for p in prior.parameters()]
    value = update_prior(curv, prior, steps=0)
    assert all(torch.equal(a, b) for a, b in zip(initial, prior.parameters()))
    value = update_prior(curv, prior, steps=20)
    torch.testing.assert_close(value, log_marginal_likelihood(curv, prior).detach())
    with pytest.raises(UserError, match="steps"):
        update_prior(curv, prior, steps=-1)


def test_a_passed_optimizer_carries_its_state_across_updates():
    model, _, curv = fitted()
    split, whole = make_prior("layer", model), make_prior("layer", model)
    opt_split = torch.optim.Adam(split.parameters(), lr=0.1)
    update_prior(curv, split, steps=15, optimizer=opt_split)
    update_prior(curv, split, steps=15, optimizer=opt_split)
    update_prior(curv, whole, steps=30, optimizer=torch.optim.Adam(whole.parameters(), lr=0.1))
    torch.testing.assert_close(split.log_delta, whole.log_delta)


def test_fit_and_update_is_fit_then_update():
    model, batches, _ = fitted()
    a, b = make_prior("parameter", model), make_prior("parameter", model)
    curv_a, value_a = fit_and_update_prior(model, batches, a, structure="diag_ggn", steps=10)
    value_b = update_prior(fit_curvature(model, batches), b, steps=10)
    torch.testing.assert_close(value_a, value_b)
    assert curv_a.structure == "diag_ggn"


def test_schedule_runs_every_frequency_epochs_from_the_burn_in():
    schedule = MarglikSchedule(frequency=5, burn_in=10)
    assert [e for e in range(1, 26) if schedule.due(e)] == [10, 15, 20, 25]
    assert [e for e in range(1, 8) if MarglikSchedule(frequency=2).due(e)] == [2, 4, 6]
    with pytest.raises(UserError, match="frequency"):
        MarglikSchedule(frequency=0)
    with pytest.raises(UserError, match="burn-in"):
        MarglikSchedule(frequency=1, burn_in=-1)
