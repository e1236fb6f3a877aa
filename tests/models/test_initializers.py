"""Initializers: each rule's distribution checked against its definition (scipy's KS test, exact
values, orthogonality), the two bias rules and the two batchnorm rules."""

import math
from types import SimpleNamespace

import pytest
import torch
from scipy import stats

from foundations.errors import UserError
from models import initializers, registry

MNIST = (1, 28, 28)
CIFAR = (3, 32, 32)
ALL_INITS = list(initializers.WEIGHT_INITIALIZERS)


def get(name, init="kaiming_normal", bn_init="uniform", shape=CIFAR, seed=0, bias_init="pytorch"):
    h = SimpleNamespace(model_name=name, model_init=init, batchnorm_init=bn_init, bias_init=bias_init,
                        batchnorm_frozen=False, output_frozen=False)
    return registry.get(h, shape, 10, seed)


def kaiming_std(fan_in):
    return math.sqrt(2.0 / fan_in)


@pytest.fixture(scope="module")
def lenet_weights():
    """fc_layers.0 of a LeNet 784-300-100: 235,200 draws with fan_in 784, per initializer."""
    return {init: get("mnist_lenet_300_100", init, shape=MNIST).fc_layers[0].weight.detach().double()
            for init in ALL_INITS}


def test_kaiming_normal_is_normal_with_fan_in_std(lenet_weights):
    w = lenet_weights["kaiming_normal"].flatten()
    std = kaiming_std(784)
    assert w.std().item() == pytest.approx(std, rel=0.01)
    assert abs(w.mean().item()) < 4 * std / math.sqrt(w.numel())
    assert stats.kstest(w.numpy(), "norm", args=(0.0, std)).pvalue > 1e-3
    assert stats.kstest(w.numpy(), "norm", args=(0.0, 1.1 * std)).pvalue < 1e-6  # the test has power


def test_kaiming_normal_fan_in_of_a_conv_is_channels_times_kernel_area():
    conv = get("cifar_resnet_20").blocks[8].conv2.weight.detach()  # (64, 64, 3, 3): fan_in 576
    assert conv.std().item() == pytest.approx(kaiming_std(64 * 9), rel=0.02)


def test_kaiming_uniform_bounds_and_shape(lenet_weights):
    w = lenet_weights["kaiming_uniform"].flatten()
    bound = math.sqrt(6.0 / 784)
    assert w.abs().max().item() <= bound and w.abs().max().item() > 0.999 * bound
    assert w.std().item() == pytest.approx(kaiming_std(784), rel=0.01)
    assert stats.kstest(w.numpy(), "uniform", args=(-bound, 2 * bound)).pvalue > 1e-3


def test_orthogonal_rows_are_orthonormal(lenet_weights):
    wide = lenet_weights["orthogonal"]  # (300, 784): 300 orthonormal rows
    torch.testing.assert_close(wide @ wide.T, torch.eye(300, dtype=wide.dtype), atol=1e-5, rtol=0)
    square = get("lenet_64_64", "orthogonal", shape=MNIST).fc_layers[1].weight.detach().double()
    torch.testing.assert_close(square @ square.T, torch.eye(64, dtype=square.dtype), atol=1e-5, rtol=0)
    torch.testing.assert_close(square.T @ square, torch.eye(64, dtype=square.dtype), atol=1e-5, rtol=0)
    conv = get("cifar_resnet_8_4", "orthogonal").blocks[0].conv1.weight.detach().double().flatten(1)
    torch.testing.assert_close(conv @ conv.T, torch.eye(4, dtype=conv.dtype), atol=1e-5, rtol=0)


def test_standard_normal_ignores_fan_in(lenet_weights):
    w = lenet_weights["standard_normal"].flatten()
    assert w.std().item() == pytest.approx(1.0, rel=0.01)
    assert stats.kstest(w.numpy(), "norm").pvalue > 1e-3
    narrow = get("mnist_lenet_300_100", "standard_normal", shape=MNIST).fc_layers[1].weight  # fan_in 300
    assert narrow.std().item() == pytest.approx(1.0, rel=0.03)


def test_binary_is_plus_minus_the_kaiming_std_in_every_layer():
    model = get("cifar_resnet_8_4", "binary")
    for name in model.prunable_layer_names:
        w = model.get_parameter(name).detach()
        std = kaiming_std(w[0].numel())
        values = torch.unique(w)
        assert len(values) == 2, name
        torch.testing.assert_close(values, torch.tensor([-std, std]), rtol=1e-6, atol=0)


def test_binary_signs_are_balanced(lenet_weights):
    w = lenet_weights["binary"]
    assert (w > 0).double().mean().item() == pytest.approx(0.5, abs=0.005)


@pytest.mark.parametrize("init", ALL_INITS)
def test_zero_biases_and_seeds_reproduce(init):
    model = get("mnist_lenet_20_10", init, shape=MNIST, bias_init="zero")
    biases = [p for name, p in model.named_parameters() if name.endswith("bias")]
    assert len(biases) == 3 and all(not b.any() for b in biases)
    again = get("mnist_lenet_20_10", init, shape=MNIST, bias_init="zero").state_dict()
    assert all(torch.equal(v, again[k]) for k, v in model.state_dict().items())
    other = get("mnist_lenet_20_10", init, shape=MNIST, seed=1, bias_init="zero").state_dict()
    assert not torch.equal(model.fc.weight, other["fc.weight"])


def test_pytorch_biases_are_each_layers_own_draw_from_the_seed():
    """OpenLTH's biases: torch's default U(-1/sqrt(fan_in), 1/sqrt(fan_in)), drawn when the layer is
    built, i.e. exactly the biases of the same layers built from the same seed (weights redrawn)."""
    model = get("mnist_lenet_300_100", shape=MNIST, seed=5)
    torch.manual_seed(5)
    reference = [torch.nn.Linear(784, 300), torch.nn.Linear(300, 100), torch.nn.Linear(100, 10)]
    biases = [model.fc_layers[0].bias, model.fc_layers[1].bias, model.fc.bias]
    for layer, bias in zip(reference, biases):
        assert torch.equal(layer.bias, bias)
    bound = 1 / math.sqrt(784)
    first = model.fc_layers[0].bias.detach().double().numpy()
    assert first.min() >= -bound and first.max() <= bound
    assert stats.kstest(first, "uniform", args=(-bound, 2 * bound)).pvalue > 1e-3


def test_conv_biases_follow_the_bias_rule():
    model = get("cifar_vgg_11", "standard_normal", bias_init="zero")  # VGG convs carry biases
    biases = [m.conv.bias for m in model.layers if hasattr(m, "conv")]
    assert len(biases) == 8 and all(not b.any() for b in biases)
    assert all(m.conv.weight.std() > 0.9 for m in model.layers if hasattr(m, "conv"))
    default = get("cifar_vgg_11", "standard_normal")
    assert all(m.conv.bias.abs().max() > 0 for m in default.layers if hasattr(m, "conv"))


def test_batchnorm_uniform():
    model = get("cifar_vgg_16", bn_init="uniform")  # 4,224 BN channels
    scales = torch.cat([m.bn.weight.detach() for m in model.layers if hasattr(m, "bn")])
    shifts = torch.cat([m.bn.bias.detach() for m in model.layers if hasattr(m, "bn")])
    assert scales.numel() == 4224
    assert scales.min() >= 0 and scales.max() < 1
    assert stats.kstest(scales.double().numpy(), "uniform").pvalue > 1e-3
    assert not shifts.any()


def test_batchnorm_fixed():
    model = get("cifar_resnet_8_2", bn_init="fixed")
    norms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert len(norms) == 9
    assert all(torch.equal(m.weight, torch.ones_like(m.weight)) and not m.bias.any() for m in norms)


def test_check_names_lists_the_choices():
    with pytest.raises(UserError, match="orthogonal"):
        initializers.check_names("he", "uniform")
    with pytest.raises(UserError, match="fixed"):
        initializers.check_names("kaiming_normal", "ones")
    initializers.check_names("binary", "fixed")  # valid names pass


def test_normal_draws_weights_and_biases_with_init_std():
    h = SimpleNamespace(model_name="mnist_lenet_300_100", model_init="normal", batchnorm_init="uniform",
                        bias_init="normal", batchnorm_frozen=False, output_frozen=False, init_std=0.1)
    model = registry.get(h, MNIST, 10, 0)
    first = model.fc_layers[0]
    assert first.weight.std().item() == pytest.approx(0.1, rel=0.01)
    assert stats.kstest((first.weight / 0.1).flatten().detach().numpy(), "norm").pvalue > 1e-3
    assert first.bias.std().item() == pytest.approx(0.1, rel=0.15)  # 300 biases
    h.init_std = 0.5
    assert registry.get(h, MNIST, 10, 0).fc_layers[0].weight.std().item() == pytest.approx(0.5, rel=0.01)


def test_pytorch_rule_keeps_each_layers_own_draw():
    torch.manual_seed(0)
    model = get("mnist_lenet_300_100", "pytorch", shape=MNIST, seed=3)
    weight = model.fc_layers[0].weight
    bound = 1 / math.sqrt(784)
    assert weight.abs().max().item() <= bound and weight.abs().max().item() > 0.99 * bound
    assert stats.kstest(weight.flatten().detach().numpy(), "uniform", args=(-bound, 2 * bound)).pvalue > 1e-3


def test_init_std_without_a_normal_rule_is_refused():
    from foundations.bundles import ModelHparams
    with pytest.raises(UserError, match="--init_std=0.2 is used only by"):
        ModelHparams(model_name="mnist_lenet_300_100", init_std=0.2)
    assert ModelHparams(model_name="mnist_lenet_300_100", model_init="normal", init_std=0.2).init_std == 0.2
