"""bayes.laplace: the log marginal likelihood against laplace-torch, dense linear algebra, and
finite differences; masked weights must not matter."""

import warnings

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from bayes.curvature import Curvature, KronBlock, fit_curvature
from bayes.laplace import log_marginal_likelihood, marglik_terms
from bayes.priors import make_prior
from foundations.errors import UserError

laplace = pytest.importorskip("laplace")


def mlp(dtype=torch.float32) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(5, 7), nn.ReLU(), nn.Linear(7, 3)).to(dtype)


def cnn(dtype=torch.float32) -> nn.Module:
    torch.manual_seed(1)
    return nn.Sequential(
        nn.Conv2d(2, 3, 3, padding=1, stride=2), nn.ReLU(), nn.Conv2d(3, 4, 2), nn.Flatten(), nn.Linear(64, 3)
    ).to(dtype)


def loader(model: nn.Module, likelihood: str, n: int = 20) -> DataLoader:
    g = torch.Generator().manual_seed(2)
    dtype = next(model.parameters()).dtype
    shape = (n, 5) if isinstance(model[0], nn.Linear) else (n, 2, 9, 9)
    x = torch.randn(shape, generator=g).to(dtype)
    if likelihood == "classification":
        y = torch.randint(0, 3, (n,), generator=g)
    else:
        y = torch.randn(n, 3, generator=g).to(dtype)
    return DataLoader(TensorDataset(x, y), batch_size=8)


def randomize(prior, seed: int = 3, scale: float = 0.5) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in prior.parameters():
            p.add_(scale * torch.randn(p.shape, generator=g).to(p.dtype))


def laplace_precision(prior) -> torch.Tensor:
    """Our prior in laplace-torch's form: length 1 (scalar), n_layers, or n_params."""
    if prior.kind in ("scalar", "layer"):
        return prior.log_delta.detach().exp().reshape(-1)
    return torch.cat([p.detach().reshape(-1) for p in prior.precision().values()])


CASES = [
    ("diag_ggn", "scalar"), ("diag_ggn", "layer"), ("diag_ggn", "parameter"), ("kfac", "scalar"), ("kfac", "layer"),
]


@pytest.mark.parametrize("build", [mlp, cnn])
@pytest.mark.parametrize("likelihood", ["classification", "regression"])
@pytest.mark.parametrize("structure,kind", CASES)
def test_log_marginal_likelihood_matches_laplace_torch(build, likelihood, structure, kind):
    model = build()
    data = loader(model, likelihood)
    sigma, temperature = (1.0, 0.5) if likelihood == "classification" else (0.7, 0.8)
    reference_class = laplace.DiagLaplace if structure == "diag_ggn" else laplace.KronLaplace
    reference = reference_class(model, likelihood, sigma_noise=sigma, temperature=temperature)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference.fit(data)
    curv = fit_curvature(model, data, likelihood, structure)
    prior = make_prior(kind, model)
    randomize(prior)

    ours = marglik_terms(curv, prior, sigma, temperature)
    expected = reference.log_marginal_likelihood(laplace_precision(prior))
    torch.testing.assert_close(ours.value.detach(), expected, rtol=1e-4, atol=0)
    torch.testing.assert_close(ours.log_likelihood, reference.log_likelihood, rtol=1e-5, atol=0)
    torch.testing.assert_close(ours.scatter.detach(), reference.scatter, rtol=1e-5, atol=0)
    ratio = (ours.log_det_posterior - ours.log_det_prior).detach()
    torch.testing.assert_close(ratio, reference.log_det_ratio, rtol=1e-4, atol=1e-3)


def test_diag_empirical_fisher_matches_laplace_torch():
    from laplace.curvature import CurvlinopsEF

    model = cnn()
    data = loader(model, "classification")
    reference = laplace.DiagLaplace(model, "classification", backend=CurvlinopsEF)
    reference.fit(data)
    curv = fit_curvature(model, data, "classification", "diag_ef")
    prior = make_prior("parameter", model)
    randomize(prior)
    expected = reference.log_marginal_likelihood(laplace_precision(prior))
    torch.testing.assert_close(log_marginal_likelihood(curv, prior).detach(), expected, rtol=1e-4, atol=0)


def directional_check(curv, prior, sigma=1.0, eps=1e-6):
    """Gradient in the log precisions (and sigma) against central finite differences."""
    params = list(prior.parameters())
    sigma_t = torch.tensor(sigma, dtype=torch.float64, requires_grad=True) if curv.likelihood == "regression" else 1.0
    value = log_marginal_likelihood(curv, prior, sigma_t)
    leaves = params + ([sigma_t] if torch.is_tensor(sigma_t) else [])
    grads = torch.autograd.grad(value, leaves)
    g = torch.Generator().manual_seed(4)
    for _ in range(3):
        direction = [torch.randn(p.shape, generator=g, dtype=torch.float64) for p in leaves]
        analytic = sum((gr * d).sum() for gr, d in zip(grads, direction))
        values = []
        for sign in (1, -1):
            with torch.no_grad():
                for p, d in zip(leaves, direction):
                    p.add_(sign * eps * d)
                values.append(log_marginal_likelihood(curv, prior, sigma_t))
                for p, d in zip(leaves, direction):
                    p.sub_(sign * eps * d)
        numeric = (values[0] - values[1]) / (2 * eps)
        torch.testing.assert_close(analytic, numeric, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize(
    "structure,kind,likelihood,masked",
    [
        ("diag_ggn", "parameter", "classification", False),
        ("diag_ggn", "unit", "regression", True),
        ("kfac", "layer", "regression", False),
        ("kfac", "parameter", "classification", False),
        ("kfac", "unit", "classification", True),
    ],
)
def test_gradient_in_the_log_precisions_matches_finite_differences(structure, kind, likelihood, masked):
    model = cnn(torch.float64)
    mask = None
    if masked:
        g = torch.Generator().manual_seed(5)
        mask = {"4.weight": torch.rand(3, 64, generator=g) > 0.5, "0.weight": torch.rand(3, 2, 3, 3, generator=g) > 0.3}
    curv = fit_curvature(model, loader(model, likelihood), likelihood, structure, mask)
    prior = make_prior(kind, model)
    randomize(prior)
    directional_check(curv, prior, sigma=0.8)


def single_layer_curvature(G: torch.Tensor, A: torch.Tensor, theta: torch.Tensor, mask=None) -> Curvature:
    """A hand-built KFAC curvature of one bias-free layer, for dense linear-algebra oracles."""
    return Curvature(
        structure="kfac", likelihood="classification", theta={"w": theta},
        mask={} if mask is None else {"w": mask}, diagonal={},
        kron=[KronBlock("w", None, theta.shape, G, A)], loss=torch.tensor(3.0, dtype=torch.float64),
        n_data=5, n_outputs=3, prunable=("w",),
    )


def random_psd(n: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    root = torch.randn(n, n, generator=g, dtype=torch.float64)
    return root @ root.T / n


def dense_log_det(curv, prior, temperature=1.0, keep=None) -> torch.Tensor:
    block = curv.kron[0]
    delta = prior.precision()["w"].detach().reshape(-1)
    P = torch.kron(block.G, block.A) / temperature + torch.diag(delta)
    if keep is not None:
        P = P[keep][:, keep]
    return torch.logdet(P)


def test_kfac_log_det_is_exact_for_a_constant_prior_and_an_upper_bound_otherwise():
    theta = torch.randn(4, 3, dtype=torch.float64)
    curv = single_layer_curvature(random_psd(4, 6), random_psd(3, 7), theta)
    scalar = make_prior("scalar", curv.theta, init_precision=0.3)
    ours = marglik_terms(curv, scalar, temperature=0.5).log_det_posterior
    torch.testing.assert_close(ours.detach(), dense_log_det(curv, scalar, 0.5))
    for kind in ("parameter", "unit"):
        prior = make_prior(kind, curv.theta)
        randomize(prior, scale=1.0)
        approximate = marglik_terms(curv, prior).log_det_posterior.detach()
        exact = dense_log_det(curv, prior)
        assert approximate >= exact - 1e-10  # Hadamard's inequality in the eigenbasis
        assert approximate - exact < 0.5 * abs(exact)


def test_kfac_eigenbasis_approximation_is_exact_for_diagonal_factors_with_any_prior_and_mask():
    theta = torch.randn(4, 3, dtype=torch.float64)
    G = torch.diag(torch.tensor([2.0, 0.5, 1.0, 3.0], dtype=torch.float64))
    A = torch.diag(torch.tensor([1.5, 0.2, 0.7], dtype=torch.float64))
    mask = torch.rand(4, 3, generator=torch.Generator().manual_seed(8)) > 0.4
    for m in (None, mask):
        curv = single_layer_curvature(G, A, theta * (1 if m is None else m), m)
        prior = make_prior("parameter", curv.theta)
        randomize(prior, scale=1.0)
        keep = None if m is None else m.reshape(-1)
        ours = marglik_terms(curv, prior).log_det_posterior.detach()
        torch.testing.assert_close(ours, dense_log_det(curv, prior, keep=keep))


def test_diagonal_marglik_with_a_mask_is_the_marglik_of_the_kept_weights():
    model = mlp(torch.float64)
    mask = {"0.weight": torch.rand(7, 5, generator=torch.Generator().manual_seed(9)) > 0.5}
    curv = fit_curvature(model, loader(model, "classification"), "classification", "diag_ggn", mask)
    prior = make_prior("parameter", model)
    randomize(prior)
    log_delta = {n: lp.detach() for n, lp in prior.log_precision().items()}
    keep = {n: mask.get(n, torch.ones_like(t, dtype=torch.bool)) for n, t in curv.theta.items()}
    scatter = sum((log_delta[n].exp() * curv.theta[n].square())[keep[n]].sum() for n in keep)
    log_det_prior = sum(log_delta[n][keep[n]].sum() for n in keep)
    log_det_post = sum(torch.log(curv.diagonal[n] + log_delta[n].exp())[keep[n]].sum() for n in keep)
    expected = -curv.loss - 0.5 * (scatter + log_det_post - log_det_prior)
    torch.testing.assert_close(log_marginal_likelihood(curv, prior).detach(), expected)


@pytest.mark.parametrize("structure", ["diag_ggn", "kfac"])
def test_precisions_of_masked_weights_do_not_change_the_marglik(structure):
    model = cnn(torch.float64)
    mask = {"4.weight": torch.rand(3, 64, generator=torch.Generator().manual_seed(10)) > 0.5}
    curv = fit_curvature(model, loader(model, "classification"), "classification", structure, mask)
    prior = make_prior("parameter", model)
    randomize(prior)
    before = log_marginal_likelihood(curv, prior).detach()
    with torch.no_grad():
        prior.log_delta[4][~mask["4.weight"]] += 5.0
    torch.testing.assert_close(log_marginal_likelihood(curv, prior).detach(), before)
    with torch.no_grad():
        prior.log_delta[4][mask["4.weight"]] += 5.0
    assert not torch.isclose(log_marginal_likelihood(curv, prior).detach(), before)


def test_kfac_with_an_all_kept_mask_equals_kfac_without_one():
    model = cnn(torch.float64)
    data = loader(model, "classification")
    curv = fit_curvature(model, data, "classification", "kfac")
    all_kept = fit_curvature(model, data, "classification", "kfac", {"4.weight": torch.ones(3, 64, dtype=torch.bool)})
    prior = make_prior("unit", model)
    randomize(prior)
    torch.testing.assert_close(log_marginal_likelihood(all_kept, prior), log_marginal_likelihood(curv, prior))


def test_mismatched_prior_and_noise_for_classification_are_user_errors():
    model = mlp()
    curv = fit_curvature(model, loader(model, "classification"), "classification")
    with pytest.raises(UserError, match="sigma_noise"):
        log_marginal_likelihood(curv, make_prior("scalar", model), sigma_noise=0.5)
    with pytest.raises(UserError, match="different parameters"):
        log_marginal_likelihood(curv, make_prior("scalar", cnn()))
