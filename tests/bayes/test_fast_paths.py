"""The fast paths of the marginal-likelihood update equal the paths they replace: the closed-form
gradient in the log precisions against autograd through the whole Laplace marginal likelihood,
and the fit over merged batches against the fit batch by batch."""

import pytest
import torch
from torch import nn

from bayes.curvature import fit_curvature, merged_batches
from bayes.laplace import log_marginal_likelihood
from bayes.marglik import DiagonalMarglikGradient, update_prior
from bayes.priors import PRIOR_KINDS, make_prior


def _model_and_batches(likelihood: str):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 7), nn.ReLU(), nn.Linear(7, 3)).double()
    g = torch.Generator().manual_seed(1)
    x = torch.randn(40, 5, generator=g, dtype=torch.float64)
    y = torch.randint(0, 3, (40,), generator=g) if likelihood == "classification" else torch.randn(
        40, 3, generator=g, dtype=torch.float64)
    return model, [(x[i : i + 8], y[i : i + 8]) for i in range(0, 40, 8)]


def _random_prior(kind: str, model: nn.Module):
    prior = make_prior(kind, model)
    g = torch.Generator().manual_seed(2)
    with torch.no_grad():
        for p in prior.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype))
    return prior


@pytest.mark.parametrize("kind", PRIOR_KINDS)
@pytest.mark.parametrize("likelihood, structure, sigma, temperature", [
    ("classification", "diag_ggn", 1.0, 1.0), ("classification", "diag_ef", 1.0, 0.3),
    ("regression", "diag_ggn", 0.7, 2.0)])
@pytest.mark.parametrize("masked", [False, True])
def test_closed_form_gradient_equals_autograd(kind, likelihood, structure, sigma, temperature, masked):
    model, batches = _model_and_batches(likelihood)
    mask = {"0.weight": torch.rand(7, 5, generator=torch.Generator().manual_seed(3)) > 0.4} if masked else None
    curvature = fit_curvature(model, batches, likelihood, structure, mask)
    by_autograd, closed_form = _random_prior(kind, model), _random_prior(kind, model)
    (-log_marginal_likelihood(curvature, by_autograd, sigma, temperature)).backward()
    DiagonalMarglikGradient(curvature, sigma, temperature)(closed_form)
    for a, b in zip(by_autograd.parameters(), closed_form.parameters()):
        torch.testing.assert_close(b.grad, a.grad, rtol=1e-12, atol=1e-12)


def test_the_update_takes_the_same_steps_as_autograd():
    model, batches = _model_and_batches("classification")
    curvature = fit_curvature(model, batches, "classification", "diag_ggn")
    fast, slow = make_prior("unit", model), make_prior("unit", model)
    value = update_prior(curvature, fast, steps=30, lr=0.1)
    optimizer = torch.optim.Adam(slow.parameters(), lr=0.1)
    for _ in range(30):  # the path update_prior takes without a closed form (kfac, a learned sigma)
        optimizer.zero_grad()
        (-log_marginal_likelihood(curvature, slow)).backward()
        optimizer.step()
    for a, b in zip(slow.parameters(), fast.parameters()):
        torch.testing.assert_close(b, a, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(value, log_marginal_likelihood(curvature, slow).detach(), rtol=1e-12, atol=1e-12)


def test_batches_merge_in_order_within_the_budget_and_are_never_split():
    batches = [(torch.full((n, 2), float(i)), torch.full((n,), i)) for i, n in enumerate([3, 3, 3, 10, 2, 2])]
    merged = list(merged_batches(batches, columns=2, budget=2 * 2 * 6))  # 6 examples of 2 inputs, 2 columns
    assert [x.shape[0] for x, _ in merged] == [6, 3, 10, 4]
    assert torch.equal(torch.cat([x for x, _ in merged]), torch.cat([x for x, _ in batches]))
    assert torch.equal(torch.cat([y for _, y in merged]), torch.cat([y for _, y in batches]))


@pytest.mark.parametrize("structure", ["diag_ggn", "diag_ef", "kfac"])
def test_a_fit_over_merged_batches_equals_the_fit_batch_by_batch(structure):
    model, batches = _model_and_batches("classification")
    merged = fit_curvature(model, batches, "classification", structure)  # 40 examples: one merged pass
    one_by_one = fit_curvature(model, [batches[0]], "classification", structure)
    for batch in batches[1:]:
        part = fit_curvature(model, [batch], "classification", structure)
        for name in one_by_one.diagonal:
            one_by_one.diagonal[name] += part.diagonal[name]
        for whole, piece in zip(one_by_one.kron, part.kron):
            whole.G += piece.G
            whole.A += piece.A
        one_by_one.loss += part.loss
    for name in merged.diagonal:
        torch.testing.assert_close(merged.diagonal[name], one_by_one.diagonal[name], rtol=1e-12, atol=1e-14)
    for a, b in zip(merged.kron, one_by_one.kron):
        torch.testing.assert_close(a.G, b.G, rtol=1e-12, atol=1e-14)
        torch.testing.assert_close(a.A * 5, b.A, rtol=1e-12, atol=1e-14)  # A is a mean over the data
    torch.testing.assert_close(merged.loss, one_by_one.loss, rtol=1e-12, atol=0)
