"""bayes.opd: OPD and precision scores on hand-built and dense-oracle cases; unit sums; masks."""

import pytest
import torch
from torch import nn

from bayes.curvature import Curvature, fit_curvature
from bayes.opd import opd_scores, posterior_precision_diagonal, unit_scores
from bayes.priors import make_prior
from foundations.errors import UserError


def hand_built(mask=None) -> Curvature:
    theta = torch.tensor([[1.0, 0.5], [2.0, 0.1]])
    h = torch.tensor([[0.0, 100.0], [0.1, 10000.0]])
    return Curvature(
        structure="diag_ggn", likelihood="regression", theta={"w": theta}, mask=mask or {},
        diagonal={"w": h}, kron=[], loss=torch.tensor(0.0), n_data=1, n_outputs=1, prunable=("w",),
    )


def test_opd_ranks_a_hand_built_case_unlike_magnitude():
    curv = hand_built()
    prior = make_prior("scalar", curv.theta, init_precision=1.0)
    scores = opd_scores(curv, prior, sigma_noise=0.5)  # s = 1 / sigma^2 = 4
    expected = torch.tensor([[1.0 * 1.0, 0.25 * 401.0], [4.0 * 1.4, 0.01 * 40001.0]])
    torch.testing.assert_close(scores["w"], expected)
    assert scores["w"].flatten().argsort().tolist() == [0, 2, 1, 3]
    assert curv.theta["w"].abs().flatten().argsort().tolist() == [3, 1, 0, 2]
    precision = posterior_precision_diagonal(curv, prior, sigma_noise=0.5, temperature=2.0)
    torch.testing.assert_close(precision["w"], 2.0 * curv.diagonal["w"] + 1.0)


def test_masked_weights_score_zero():
    mask = {"w": torch.tensor([[True, False], [True, True]])}
    curv = hand_built(mask)
    prior = make_prior("parameter", curv.theta, init_precision=2.0)
    for scores in (opd_scores(curv, prior), posterior_precision_diagonal(curv, prior)):
        assert scores["w"][0, 1] == 0 and torch.all(scores["w"][mask["w"]] > 0)


def test_kfac_precision_is_the_diagonal_of_the_dense_kronecker_posterior():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 2, 2), nn.Flatten(), nn.Linear(18, 3)).double()
    model.prunable_layer_names = ["0.weight", "2.weight"]
    x = torch.randn(5, 1, 4, 4, dtype=torch.float64)
    curv = fit_curvature(model, [(x, torch.tensor([0, 1, 2, 0, 1]))], "classification", "kfac")
    prior = make_prior("unit", model)
    with torch.no_grad():
        for p in prior.parameters():
            p.uniform_(-1, 1)
    precision = posterior_precision_diagonal(curv, prior, temperature=0.5)
    assert list(precision) == ["0.weight", "2.weight"]
    deltas = prior.precision()
    for block in curv.kron:
        dense = torch.kron(block.G, block.A).diagonal() / 0.5
        expected = dense.reshape(block.weight_shape) + deltas[block.weight].detach()
        torch.testing.assert_close(precision[block.weight], expected)
    bias = posterior_precision_diagonal(curv, prior, names=["2.bias"], temperature=0.5)["2.bias"]
    torch.testing.assert_close(bias, curv.kron[1].G.diagonal() / 0.5 + deltas["2.bias"].detach())
    scores = opd_scores(curv, prior, temperature=0.5)
    torch.testing.assert_close(scores["2.weight"], model[2].weight.detach().square() * precision["2.weight"])


def test_default_names_without_prunable_layer_names_are_the_weight_tensors():
    torch.manual_seed(1)
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2)).double()
    curv = fit_curvature(model, [(torch.randn(4, 3, dtype=torch.float64), torch.tensor([0, 1, 1, 0]))])
    assert list(opd_scores(curv, make_prior("layer", model))) == ["0.weight", "2.weight"]
    with pytest.raises(UserError, match="not parameters"):
        opd_scores(curv, make_prior("layer", model), names=["missing.weight"])


def test_unit_scores_sum_each_neuron_or_filter():
    scores = {"conv": torch.arange(24.0).reshape(3, 2, 2, 2), "linear": torch.tensor([[1.0, 2.0], [3.0, 4.0]])}
    units = unit_scores(scores)
    torch.testing.assert_close(units["conv"], torch.tensor([28.0, 92.0, 156.0]))
    torch.testing.assert_close(units["linear"], torch.tensor([3.0, 7.0]))
