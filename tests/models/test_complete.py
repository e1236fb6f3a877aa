"""The complete layer: its forward against a hand loop, its names, recipes, init and layer names."""

import math
from types import SimpleNamespace

import pytest
import torch

from foundations.errors import UserError
from models import complete, registry
from pruning import Mask


def hparams(name, init="kaiming_normal", out_frozen=False):
    return SimpleNamespace(model_name=name, model_init=init, batchnorm_init="uniform",
                           batchnorm_frozen=False, output_frozen=out_frozen)


def get(name, seed=0, outputs=1, **kwargs):
    return registry.get(hparams(name, **kwargs), (2,), outputs, seed)


def hand_forward(model, x):
    """h_0 = V; h_t[i] = sigmoid(sum_j W[i, j] [h_{t-1}, x][j] (+ b[i])); out = h_T[:O], unit by unit."""
    w, v = model.weight.tolist(), model.initial_state[0].tolist()
    b = model.bias.tolist() if model.bias is not None else [0.0] * len(v)
    out = []
    for example in x.tolist():
        state = list(v)
        for _ in range(model.steps):
            inputs = state + example
            state = [1 / (1 + math.exp(-(sum(w[i][j] * inputs[j] for j in range(len(inputs))) + b[i])))
                     for i in range(len(state))]
        out.append(state[:model.num_outputs])
    return torch.tensor(out)


@pytest.mark.parametrize("name, outputs", [("xor_complete_5", 1), ("sine_complete_8_t5", 1),
                                           ("xor_complete_3_t2_bias", 2), ("sine_complete_1_t1", 1)])
def test_forward_equals_a_hand_written_loop(name, outputs):
    model = get(name, outputs=outputs)
    x = torch.randn(7, 2, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(model(x), hand_forward(model, x), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name, expected", [
    ("xor_complete_5", complete.CompleteSpec("xor", 5, 3, False)),
    ("sine_complete_8", complete.CompleteSpec("sine", 8, 3, False)),
    ("sine_complete_8_t3", complete.CompleteSpec("sine", 8, 3, False)),
    ("xor_complete_12_t7_bias", complete.CompleteSpec("xor", 12, 7, True)),
    ("xor_complete_5_bias", complete.CompleteSpec("xor", 5, 3, True)),
])
def test_names(name, expected):
    assert complete.parse(name) == expected
    assert sum(family.parse(name) is not None for family in registry.families()) == 1
    assert registry.exists(name)


@pytest.mark.parametrize("name", ["xor_complete_0", "xor_complete_5_t0", "mnist_complete_5", "xor_complete_05",
                                  "xor_complete_5_bias_t3", "complete_5", "xor_complete"])
def test_bad_names_are_unknown(name):
    assert complete.parse(name) is None
    with pytest.raises(UserError, match="unknown --model_name"):
        get(name)


def test_shapes_sizes_and_block():
    model = get("xor_complete_5", outputs=1)
    assert (model.num_inputs, model.num_hidden, model.num_outputs, model.steps) == (2, 5, 1, 3)
    shapes = {key: tuple(value.shape) for key, value in model.state_dict().items()}
    assert shapes == {"weight": (6, 8), "initial_state": (1, 6)}
    assert torch.equal(model.square_block(), model.weight[:, :6]) and not model.square_block().requires_grad
    assert get("sine_complete_4_bias", outputs=3).state_dict()["bias"].shape == (7,)
    assert model(torch.zeros(4, 2)).shape == (4, 1)


def test_layer_names_and_mask():
    model = get("xor_complete_5_bias")
    assert model.prunable_layer_names == ["weight"]
    assert model.output_layer_names == ["weight", "initial_state", "bias"]
    assert Mask.ones_like(model).keys() == ["weight"]
    with pytest.raises(UserError, match="no separate output layer"):
        get("xor_complete_5", out_frozen=True)


def test_standard_normal_init_seeded_and_not_touched_by_model_init():
    first = get("sine_complete_300_bias", seed=3)
    assert torch.equal(first.weight, get("sine_complete_300_bias", seed=3, init="orthogonal").weight)
    assert not torch.equal(first.weight, get("sine_complete_300_bias", seed=4).weight)
    for parameter in (first.weight, first.initial_state, first.bias):
        assert abs(parameter.mean().item()) < 0.15 and abs(parameter.std().item() - 1) < 0.15
    assert abs(first.weight.std().item() - 1) < 0.01  # 301 x 303 draws


def test_recipes():
    assert registry.default_hparams("xor_complete_5") == {
        "dataset": {"dataset_name": "xor", "batch_size": 4},
        "model": {"model_name": "xor_complete_5", "model_init": "standard_normal", "batchnorm_init": "uniform"},
        "training": {"optimizer_name": "adam", "lr": 0.01, "training_steps": "1000ep"},
        "pruning": {}}
    sine = registry.default_hparams("sine_complete_8_t4")
    assert sine["dataset"] == {"dataset_name": "sine", "batch_size": 10}
    assert sine["training"] == {"optimizer_name": "adam", "lr": 0.01, "training_steps": "40ep"}


def test_needs_tabular_inputs():
    with pytest.raises(UserError, match=r"\(features,\)"):
        registry.get(hparams("xor_complete_5"), (1, 28, 28), 1, 0)
