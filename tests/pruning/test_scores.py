import pytest
import torch
import torch.nn.functional as F
from torch import nn

from foundations.errors import UserError
from pruning import Mask, ScoringData, prune_in_rounds, scores
from pruning.scores.grasp import TEMPERATURE
from tests.models.test_families import assert_registry_convention
from tests.pruning.test_nets import TinyCNN, TinyMLP, labelled_data


def partial_mask(model, seed: int = 0) -> Mask:
    g = torch.Generator().manual_seed(seed)
    state = model.state_dict()
    return Mask({n: torch.rand(state[n].shape, generator=g) < 0.7 for n in model.prunable_layer_names})


# ---- the registry ---------------------------------------------------------------------------
def test_strategy_strings_parse_to_name_and_examples_per_class():
    from pruning.scores import grasp, graspabs, magnitude, snip
    assert scores.get("magnitude") is magnitude.magnitude_scores
    snip10 = scores.get("snip10")
    assert snip10.func is snip.snip_scores and snip10.keywords == {"examples_per_class": 10}
    assert scores.get("graspabs3").func is graspabs.graspabs_scores
    assert scores.get("grasp3").func is grasp.grasp_scores


def test_every_score_follows_the_registry_convention():
    names = assert_registry_convention("pruning.scores", "SCORES", callable)
    assert names == ["grasp", "graspabs", "magnitude", "opd", "random", "snip", "synflow"]
    assert scores.DATA_FREE == {name: scores.SCORES.get(name) for name in ("magnitude", "opd", "random", "synflow")}
    assert list(scores.PER_CLASS) == ["grasp", "graspabs", "snip"]
    from pruning.scores import snip
    assert snip.SCORE is snip.snip_scores


@pytest.mark.parametrize("strategy, message", [
    ("biggest", "use one of magnitude, opd, random, synflow, graspN, graspabsN, snipN"),
    ("snip", "needs N >= 1"), ("grasp0", "needs N >= 1"), ("synflow3", "takes no example count"),
    ("snip-3", "unknown pruning strategy")])
def test_bad_strategy_strings_are_user_errors(strategy, message):
    with pytest.raises(UserError, match=message):
        scores.get(strategy)


# ---- data-free scores -------------------------------------------------------------------------
def test_magnitude_is_the_absolute_weight_and_zero_where_pruned():
    model = TinyMLP()
    mask = partial_mask(model)
    result = scores.get("magnitude")(model, mask, None)
    for name in mask:
        assert torch.equal(result[name], model.state_dict()[name].abs() * mask[name])


def test_random_scores_depend_on_the_seed_only():
    mask = Mask.ones_like(TinyMLP())
    first = scores.get("random")(TinyMLP(seed=0), mask, ScoringData(seed=4))
    again = scores.get("random")(TinyMLP(seed=1), mask, ScoringData(seed=4))
    other = scores.get("random")(TinyMLP(seed=0), mask, ScoringData(seed=5))
    assert all(torch.equal(first[n], again[n]) and not torch.equal(first[n], other[n]) for n in mask)
    assert all(((s >= 0) & (s < 1)).all() for s in first.values())


class PositiveChain(nn.Module):
    """3 -> 4 -> 2 linear maps with biases and a ReLU between (transparent on positive inputs)."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.first, self.second = nn.Linear(3, 4), nn.Linear(4, 2)
        self.prunable_layer_names = ["first.weight", "second.weight"]

    def forward(self, x):
        return self.second(torch.relu(self.first(x)))


def test_synflow_matches_the_closed_form_of_a_positive_linear_chain():
    model = PositiveChain()  # default init has mixed signs: synflow must take absolute values
    mask = partial_mask(model, seed=2)
    a1 = (model.first.weight * mask["first.weight"]).abs().double().detach()
    a2 = (model.second.weight * mask["second.weight"]).abs().double().detach()
    b1 = model.first.bias.abs().double().detach()  # b2 adds to R but not to its weight gradients
    hidden = a1 @ torch.ones(3, dtype=torch.float64) + b1  # R = 1'(A2 (A1 1 + b1) + b2)
    expected_second = a2 * torch.outer(torch.ones(2, dtype=torch.float64), hidden)  # dR/dA2 = 1 h1'
    ones2, ones3 = torch.ones(2, dtype=torch.float64), torch.ones(3, dtype=torch.float64)
    expected_first = a1 * torch.outer(a2.T @ ones2, ones3)  # dR/dA1 = outer(A2^T 1, 1)
    result = scores.get("synflow")(model, mask, ScoringData(input_shape=(3,)))
    assert result["first.weight"].dtype == torch.float64
    torch.testing.assert_close(result["first.weight"], expected_first, rtol=1e-12, atol=0)
    torch.testing.assert_close(result["second.weight"], expected_second, rtol=1e-12, atol=0)


# ---- data-driven scores -----------------------------------------------------------------------
class SoftmaxRegression(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.fc = nn.Linear(4, 3)
        self.prunable_layer_names = ["fc.weight"]

    def forward(self, x):
        return self.fc(x)


@pytest.mark.parametrize("batch_size", [None, 2])
def test_snip_matches_the_softmax_regression_gradient_by_hand(batch_size):
    model, data = SoftmaxRegression(), labelled_data(shape=(4,))
    mask = partial_mask(model, seed=1)
    x, y = data.examples_per_class(2, seed=9)
    weight = model.fc.weight.detach() * mask["fc.weight"]

    def by_hand(x, y):
        probabilities = torch.softmax(x @ weight.T + model.fc.bias.detach(), dim=1)
        gradient = (probabilities - F.one_hot(y, 3).float()).T @ x / y.numel()  # dL/dW of the batch's mean loss
        return (weight * gradient).abs()

    if batch_size is None:  # one batch: |w * dL/dw| of the mean over all examples (published SNIP)
        expected = by_hand(x, y)
    else:  # the fork: the seeded shuffle cut into batches, |w * dL_b/dw| weighted by batch size
        order = torch.randperm(y.numel(), generator=torch.Generator().manual_seed(9))
        x, y = x[order], y[order]
        expected = sum(by_hand(x[i:i + batch_size], y[i:i + batch_size]) * (len(y[i:i + batch_size]) / len(y))
                       for i in range(0, len(y), batch_size))
    result = scores.get("snip2")(model, mask, ScoringData(examples=data, seed=9, batch_size=batch_size))
    torch.testing.assert_close(result["fc.weight"], expected, rtol=1e-5, atol=1e-7)


def loss_gradient_at(model: nn.Module, weights: dict, x, y) -> dict:
    """First-order gradient of the tempered mean loss with the prunable weights set to `weights`."""
    params = {n: p.detach() for n, p in model.named_parameters()}
    leaves = {n: w.clone().requires_grad_(True) for n, w in weights.items()}
    logits = torch.func.functional_call(model, {**params, **leaves}, (x,))
    grads = torch.autograd.grad(F.cross_entropy(logits / TEMPERATURE, y), list(leaves.values()))
    return dict(zip(leaves, grads))


def test_grasp_hessian_gradient_product_matches_finite_differences():
    model, data = TinyMLP().double(), labelled_data(shape=(4,))
    mask = partial_mask(model, seed=3)
    x, y = data.examples_per_class(3, seed=1)
    x = x.double()
    masked = {n: model.state_dict()[n] * mask[n] for n in mask}
    g = {n: v * mask[n] for n, v in loss_gradient_at(model, masked, x, y).items()}  # alive directions only
    eps = 1e-6
    plus = loss_gradient_at(model, {n: masked[n] + eps * g[n] for n in mask}, x, y)
    minus = loss_gradient_at(model, {n: masked[n] - eps * g[n] for n in mask}, x, y)
    result = scores.get("grasp3")(model, mask, ScoringData(examples=data, seed=1))
    absolute = scores.get("graspabs3")(model, mask, ScoringData(examples=data, seed=1))
    for n in mask:
        hg = (plus[n] - minus[n]) / (2 * eps)
        expected = -masked[n] * hg
        assert expected.abs().max() > 0
        torch.testing.assert_close(result[n], expected, rtol=1e-4, atol=1e-6 * expected.abs().max().item())
        assert torch.equal(absolute[n], result[n].abs())


# ---- what every score must respect ------------------------------------------------------------
@pytest.mark.parametrize("strategy", ["random", "magnitude", "snip2", "grasp2", "graspabs2", "synflow"])
def test_scores_leave_the_model_untouched_and_cover_the_mask(strategy):
    model, data = TinyCNN(), labelled_data(shape=(1, 5, 5))
    model.train()
    mask = partial_mask(model)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    result = scores.get(strategy)(model, mask, ScoringData(examples=data, seed=0, input_shape=(1, 5, 5)))
    assert model.training and all(p.grad is None for p in model.parameters())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # BN running stats too
    assert list(result) == mask.keys() and all(result[n].shape == mask[n].shape for n in mask)
    assert all(torch.isfinite(s).all() for s in result.values())


@pytest.mark.parametrize("strategy, highest", [("snip2", False), ("grasp2", True), ("synflow", False)])
def test_pruned_weights_stay_pruned_through_rounds_of_rescoring(strategy, highest):
    model, data = TinyCNN(), labelled_data(shape=(1, 5, 5))
    mask = partial_mask(model)
    result = prune_in_rounds(model, strategy, 0.5, 3, data=ScoringData(examples=data, input_shape=(1, 5, 5)),
                             mask=mask, highest=highest)
    assert all(not (result[n] & ~mask[n]).any() for n in mask)
    assert result.num_unpruned == mask.num_unpruned - round(0.5 * mask.num_unpruned)


def test_grasp_in_batches_is_the_size_weighted_mean_of_each_batchs_own_score():
    """The fork: per batch b, g_b and H_b g_b of the batch's own mean loss (finite differences
    here), -w * H_b g_b, weighted by the batch's share; the examples are shuffled by the seed."""
    model, data = TinyMLP().double(), labelled_data(shape=(4,))
    mask = partial_mask(model, seed=3)
    x, y = data.examples_per_class(3, seed=1)
    order = torch.randperm(y.numel(), generator=torch.Generator().manual_seed(1))
    x, y = x[order].double(), y[order]
    masked = {n: model.state_dict()[n] * mask[n] for n in mask}
    expected = {n: torch.zeros_like(masked[n]) for n in mask}
    eps = 1e-6
    for start in range(0, y.numel(), 4):
        xb, yb = x[start:start + 4], y[start:start + 4]
        g = {n: v * mask[n] for n, v in loss_gradient_at(model, masked, xb, yb).items()}
        plus = loss_gradient_at(model, {n: masked[n] + eps * g[n] for n in mask}, xb, yb)
        minus = loss_gradient_at(model, {n: masked[n] - eps * g[n] for n in mask}, xb, yb)
        for n in mask:
            expected[n] += -masked[n] * (plus[n] - minus[n]) / (2 * eps) * (yb.numel() / y.numel())
    result = scores.get("grasp3")(model, mask, ScoringData(examples=data, seed=1, batch_size=4))
    for n in mask:
        torch.testing.assert_close(result[n], expected[n], rtol=1e-4, atol=1e-6 * expected[n].abs().max().item())
    one_batch = scores.get("grasp3")(model, mask, ScoringData(examples=data, seed=1))
    assert not torch.allclose(one_batch["fc1.weight"], result["fc1.weight"])  # batching changes the scores
