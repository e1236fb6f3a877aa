"""bayes.priors: expansion of each kind to per-parameter precisions, and the MAP penalty."""

import math

import pytest
import torch
from torch import nn

from bayes.priors import PRIOR_KINDS, make_prior
from foundations.errors import UserError


def model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(2, 3, 2), nn.Flatten(), nn.Linear(12, 4), nn.LayerNorm(4))


def randomize(prior) -> None:
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in prior.parameters():
            p.copy_(torch.randn(p.shape, generator=g))


@pytest.mark.parametrize("kind", PRIOR_KINDS)
def test_every_kind_starts_at_the_initial_precision_in_every_parameter_shape(kind):
    m = model()
    prior = make_prior(kind, m, init_precision=3.0)
    precision = prior.precision()
    assert list(precision) == [n for n, _ in m.named_parameters()]
    for name, p in m.named_parameters():
        assert precision[name].shape == p.shape
        torch.testing.assert_close(precision[name], torch.full_like(p, 3.0))


def test_scalar_and_layer_priors_hold_one_and_one_per_tensor_log_precision():
    m = model()
    scalar, layer = make_prior("scalar", m), make_prior("layer", m)
    assert sum(p.numel() for p in scalar.parameters()) == 1
    assert sum(p.numel() for p in layer.parameters()) == 6
    randomize(layer)
    for i, (name, lp) in enumerate(layer.log_precision().items()):
        assert torch.all(lp == layer.log_delta[i])
    assert scalar.constant_per_tensor and layer.constant_per_tensor


def test_parameter_prior_holds_one_log_precision_per_parameter():
    m = model()
    prior = make_prior("parameter", m)
    assert sum(p.numel() for p in prior.parameters()) == sum(p.numel() for p in m.parameters())
    assert not prior.constant_per_tensor


def test_unit_prior_is_an_outer_product_of_output_and_input_unit_precisions():
    m = model()
    prior = make_prior("unit", m, init_precision=2.0)
    # conv weight (3, 2, 2, 2): 3 + 2; its bias 3; linear (4, 12): 4 + 12; bias 4; norm 4 + 4
    assert sum(p.numel() for p in prior.parameters()) == 5 + 3 + 16 + 4 + 8
    randomize(prior)
    precision = {n: p.detach() for n, p in prior.precision().items()}
    d_out, d_in = prior.log_out[0].detach().exp(), prior.log_in["0"].detach().exp()
    conv = precision["0.weight"]
    for o in range(3):
        for i in range(2):
            torch.testing.assert_close(conv[o, i], torch.full((2, 2), float(d_out[o] * d_in[i])))
    linear_out, linear_in = prior.log_out[2].detach().exp(), prior.log_in["2"].detach().exp()
    torch.testing.assert_close(precision["2.weight"], torch.outer(linear_out, linear_in))
    torch.testing.assert_close(precision["2.bias"], prior.log_out[3].detach().exp())  # one per bias entry


def test_penalty_is_half_the_precision_weighted_square_norm_and_leaves_the_prior_alone():
    m = model()
    prior = make_prior("parameter", m)
    randomize(prior)
    expected = 0.5 * sum(
        (prior.precision()[n] * p.square()).sum() for n, p in m.named_parameters()
    ) / 10
    penalty = prior.penalty(m, n_data=10)
    torch.testing.assert_close(penalty, expected.detach())
    penalty.backward()
    assert all(p.grad is None for p in prior.parameters())
    delta = prior.precision()["2.weight"].detach()
    torch.testing.assert_close(m[2].weight.grad, delta * m[2].weight.detach() / 10)


def test_penalty_of_a_scalar_prior_is_weight_decay():
    m = model()
    prior = make_prior("scalar", m, init_precision=0.5)
    params = dict(m.named_parameters())
    square_norm = sum(p.detach().square().sum() for p in params.values())
    torch.testing.assert_close(prior.penalty(params), 0.25 * square_norm)


def test_bad_prior_requests_are_user_errors():
    with pytest.raises(UserError, match="unknown prior"):
        make_prior("kronecker", model())
    with pytest.raises(UserError, match="positive"):
        make_prior("scalar", model(), init_precision=0.0)
    assert math.isclose(make_prior("layer", model(), 4.0).log_delta[0].item(), math.log(4.0), rel_tol=1e-6)
