"""bayes.curvature against oracles built from full per-example Jacobians and gradients."""

import pytest
import torch
from torch import nn
from torch.func import functional_call, grad, jacrev, vmap

from bayes.curvature import fit_curvature
from foundations.errors import UserError

DT = torch.float64


def tiny_mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(5, 7), nn.ReLU(inplace=True), nn.Linear(7, 3)).to(DT)


def tiny_cnn_with_norms() -> nn.Module:
    """Strided/padded conv, a conv without padding, eval-mode BatchNorm, a LayerNorm, a Linear."""
    torch.manual_seed(1)
    model = nn.Sequential(
        nn.Conv2d(2, 3, 3, padding=1, stride=2), nn.ReLU(), nn.Conv2d(3, 4, 2), nn.BatchNorm2d(4),
        nn.Flatten(), nn.LayerNorm(64), nn.Linear(64, 3),
    ).to(DT)
    model[3].running_mean.uniform_(-0.5, 0.5)
    model[3].running_var.uniform_(0.5, 2.0)
    return model


def data(model: nn.Module, likelihood: str, n: int = 6):
    g = torch.Generator().manual_seed(2)
    x = torch.randn(n, 5, generator=g, dtype=DT) if isinstance(model[0], nn.Linear) else \
        torch.randn(n, 2, 9, 9, generator=g, dtype=DT)
    if likelihood == "classification":
        y = torch.randint(0, 3, (n,), generator=g)
    else:
        y = torch.randn(n, 3, generator=g, dtype=DT)
    return x, y


def batches(x, y, size=4):
    return [(x[i : i + size], y[i : i + size]) for i in range(0, len(x), size)]


def full_jacobians(model, x):
    """(name -> (N, C, *param shape)) per-example Jacobians of the outputs, and the outputs."""
    params = {n: p.detach() for n, p in model.named_parameters()}
    model.eval()
    out = functional_call(model, params, (x,))
    return jacrev(lambda p: functional_call(model, p, (x,)))(params), out


def output_hessians(out, likelihood):
    if likelihood == "regression":
        return torch.eye(out.shape[1], dtype=DT).expand(out.shape[0], -1, -1)
    p = out.softmax(-1)
    return torch.diag_embed(p) - p.unsqueeze(2) * p.unsqueeze(1)


@pytest.mark.parametrize("build", [tiny_mlp, tiny_cnn_with_norms])
@pytest.mark.parametrize("likelihood", ["classification", "regression"])
def test_diag_ggn_is_the_diagonal_of_jt_h_j(build, likelihood):
    model = build()
    x, y = data(model, likelihood)
    curv = fit_curvature(model, batches(x, y), likelihood, "diag_ggn")
    jac, out = full_jacobians(model, x)
    H = output_hessians(out, likelihood)
    for name, J in jac.items():
        expected = torch.einsum("nc...,nck,nk...->...", J, H, J)
        torch.testing.assert_close(curv.diagonal[name], expected, rtol=1e-10, atol=1e-12)
    assert set(curv.diagonal) == set(jac)
    assert curv.n_data == 6 and curv.n_outputs == 3


def sequence_mlp():
    """A Linear shared over 2 positions (weight sharing without a conv)."""
    torch.manual_seed(5)
    return nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Flatten(), nn.Linear(8, 3)).to(DT), (6, 2, 3)


def grouped_cnn():
    """A grouped conv has no closed form here: its weight takes the generic per-example route."""
    torch.manual_seed(6)
    return nn.Sequential(nn.Conv2d(2, 4, 3, groups=2), nn.Flatten(), nn.Linear(4 * 5 * 5, 3)).to(DT), (6, 2, 7, 7)


@pytest.mark.parametrize("build", [sequence_mlp, grouped_cnn])
@pytest.mark.parametrize("structure", ["diag_ggn", "kfac"])
def test_weight_sharing_and_generic_layers_get_the_exact_diagonal(build, structure):
    model, shape = build()
    x = torch.randn(shape, generator=torch.Generator().manual_seed(7), dtype=DT)
    y = torch.tensor([0, 1, 2, 0, 1, 2])
    curv = fit_curvature(model, batches(x, y), "classification", structure)
    jac, out = full_jacobians(model, x)
    H = output_hessians(out, "classification")
    exact = {name: torch.einsum("nc...,nck,nk...->...", J, H, J) for name, J in jac.items()}
    diagonal = dict(curv.diagonal)
    for block in curv.kron:  # KFAC: compare the diagonal of G kron A where it is exact, else skip
        diagonal.pop(block.weight, None)
    for name, d in diagonal.items():
        torch.testing.assert_close(d, exact[name], rtol=1e-10, atol=1e-12)
    if structure == "kfac" and build is grouped_cnn:
        assert set(curv.diagonal) == {"0.weight", "0.bias"}
    if structure == "diag_ggn":
        assert set(diagonal) == set(exact)


def test_diag_ggn_restores_training_mode_and_counts_the_loss():
    model = tiny_cnn_with_norms().train()
    x, y = data(model, "classification")
    curv = fit_curvature(model, batches(x, y), "classification")
    assert model.training
    model.eval()
    expected = nn.functional.cross_entropy(model(x), y, reduction="sum")
    torch.testing.assert_close(curv.loss, expected.detach())


@pytest.mark.parametrize("likelihood", ["classification", "regression"])
def test_diag_ef_is_the_sum_of_squared_per_example_gradients(likelihood):
    model = tiny_cnn_with_norms().eval()
    x, y = data(model, likelihood)
    params = {n: p.detach() for n, p in model.named_parameters()}

    def nll(p, x_n, y_n):
        f = functional_call(model, p, (x_n.unsqueeze(0),))
        if likelihood == "classification":
            return nn.functional.cross_entropy(f, y_n.unsqueeze(0), reduction="sum")
        return 0.5 * (f - y_n).square().sum()

    per_example = vmap(grad(nll), in_dims=(None, 0, 0))(params, x, y)
    curv = fit_curvature(model, batches(x, y), likelihood, "diag_ef")
    for name, g in per_example.items():
        torch.testing.assert_close(curv.diagonal[name], g.square().sum(0), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("likelihood", ["classification", "regression"])
def test_kfac_equals_the_exact_ggn_block_for_one_example_through_a_linear_layer(likelihood):
    torch.manual_seed(3)
    model = nn.Sequential(nn.Linear(4, 5), nn.Tanh(), nn.Linear(5, 3)).to(DT)
    x, y = data(nn.Sequential(nn.Linear(5, 1)), likelihood, n=1)
    x = x[:, :4]
    curv = fit_curvature(model, [(x, y)], likelihood, "kfac")
    jac, out = full_jacobians(model, x)
    H = output_hessians(out, likelihood)[0]
    for block in curv.kron:
        J_w = jac[block.weight][0].reshape(3, -1)
        exact_w = J_w.T @ H @ J_w
        torch.testing.assert_close(torch.kron(block.G, block.A), exact_w, rtol=1e-10, atol=1e-12)
        J_b = jac[block.bias][0]
        torch.testing.assert_close(block.G, J_b.T @ H @ J_b, rtol=1e-10, atol=1e-12)
    assert curv.diagonal == {}


def test_kfac_factors_follow_the_documented_conv_scaling():
    """G sums over examples and output pixels; A averages patches over examples and pixels."""
    torch.manual_seed(4)
    conv = nn.Conv2d(2, 3, 2, stride=1)
    model = nn.Sequential(conv, nn.Flatten(), nn.Linear(3 * 4 * 4, 2)).to(DT)
    x = torch.randn(3, 2, 5, 5, dtype=DT)
    y = torch.tensor([0, 1, 1])
    curv = fit_curvature(model, batches(x, y, 2), "classification", "kfac")
    block = curv.kron[0]
    patches = nn.functional.unfold(x, 2).transpose(1, 2).reshape(-1, 8)  # (N*P, in*kh*kw)
    torch.testing.assert_close(block.A, patches.T @ patches / (3 * 16))
    # G: backpropagate every column of the output Hessian's square root to the conv output.
    model.eval()
    z = conv(x).detach().requires_grad_()
    f = model[2](model[1](z))
    p = f.softmax(-1).detach()
    columns = p.sqrt().T.unsqueeze(-1) * (torch.eye(2, dtype=DT).unsqueeze(1) - p.unsqueeze(0))
    G = torch.zeros(3, 3, dtype=DT)
    for c in range(2):
        (g,) = torch.autograd.grad(f, z, columns[c], retain_graph=True)
        g = g.permute(0, 2, 3, 1).reshape(-1, 3)
        G += g.T @ g
    torch.testing.assert_close(block.G, G)


def test_kfac_batching_does_not_change_the_factors():
    model = tiny_cnn_with_norms()
    x, y = data(model, "classification", n=8)
    whole = fit_curvature(model, [(x, y)], "classification", "kfac")
    split = fit_curvature(model, batches(x, y, 3), "classification", "kfac")
    for a, b in zip(whole.kron, split.kron):
        torch.testing.assert_close(a.G, b.G)
        torch.testing.assert_close(a.A, b.A)
    for name in whole.diagonal:  # norm layers: exact diagonal GGN
        torch.testing.assert_close(whole.diagonal[name], split.diagonal[name])
    assert set(whole.diagonal) == {"3.weight", "3.bias", "5.weight", "5.bias"}


@pytest.mark.parametrize("structure", ["diag_ggn", "kfac"])
def test_masked_weights_are_zero_in_the_forward_pass_and_the_curvature(structure):
    model = tiny_mlp()
    x, y = data(model, "classification")
    mask = {"0.weight": torch.rand(7, 5, generator=torch.Generator().manual_seed(5)) > 0.5}
    curv = fit_curvature(model, batches(x, y), "classification", structure, mask)
    pruned = tiny_mlp()
    with torch.no_grad():
        pruned[0].weight.mul_(mask["0.weight"])
    reference = fit_curvature(pruned, batches(x, y), "classification", structure)
    torch.testing.assert_close(curv.loss, reference.loss)
    assert torch.all(curv.theta["0.weight"][~mask["0.weight"]] == 0)
    if structure == "diag_ggn":
        expected = reference.diagonal["0.weight"] * mask["0.weight"]
        torch.testing.assert_close(curv.diagonal["0.weight"], expected)
    else:
        torch.testing.assert_close(curv.kron[0].G, reference.kron[0].G)


def test_bad_inputs_are_user_errors():
    model = tiny_mlp()
    x, y = data(model, "classification")
    with pytest.raises(UserError, match="structure"):
        fit_curvature(model, [(x, y)], "classification", "full")
    with pytest.raises(UserError, match="likelihood"):
        fit_curvature(model, [(x, y)], "poisson")
    with pytest.raises(UserError, match="not a trainable parameter"):
        fit_curvature(model, [(x, y)], mask={"nope": torch.ones(1, dtype=torch.bool)})
    with pytest.raises(UserError, match="shape"):
        fit_curvature(model, [(x, y)], mask={"0.weight": torch.ones(5, 7, dtype=torch.bool)})
    with pytest.raises(UserError, match="targets"):
        fit_curvature(model, [(x, y.to(DT))], "regression")
    with pytest.raises(UserError, match="empty"):
        fit_curvature(model, [])


def test_kron_factors_of_raw_features_decompose_in_float64_and_a_hopeless_one_is_one_line():
    from bayes.curvature import symmetric_eigh
    from foundations.errors import UserError

    # the breast cancer table unstandardized: feature scales from 1e-3 to 4e3, A's spectrum spans ~1e13
    x = torch.randn(500, 30, generator=torch.Generator().manual_seed(0)) * torch.logspace(-3, 3.6, 30)
    a = (x.T @ x / 500).float()
    lam, u = symmetric_eigh(a, "A")
    assert lam.dtype == torch.float32 and u.dtype == torch.float32
    assert ((u * lam) @ u.T - a).abs().max() <= 1e-6 * a.abs().max()  # reconstructs A
    with pytest.raises(UserError, match="ill-conditioned.*input_normalization=dataset"):
        symmetric_eigh(torch.full((3, 3), float("nan")), "A")
