"""pruning.compact: removing zero units keeps the masked network's function; sizes counted by hand."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

import models.registry as registry
from pruning.compact import compact, size_of
from pruning.mask import Mask
from pruning.structured_scores import prune_units_by_scores, unit_layers


def build(name: str, shape: tuple[int, ...], classes: int = 10, seed: int = 0):
    h = SimpleNamespace(model_name=name, model_init="kaiming_normal", batchnorm_init="uniform",
                        batchnorm_frozen=False, output_frozen=False)
    model = registry.get(h, shape, classes, seed=seed)
    with torch.no_grad():  # biases of both signs, so dead ReLUs pass constants of either kind
        for parameter in model.parameters():
            if parameter.dim() == 1:
                parameter.uniform_(-0.5, 0.5, generator=torch.Generator().manual_seed(1))
    return model.double()


def zero_units(model, structure: str, fraction: float) -> Mask:
    dense = Mask.ones_like(model)
    g = torch.Generator().manual_seed(2)
    scores = {name: torch.rand(dense[name].shape, generator=g) for name in dense}
    mask = prune_units_by_scores(scores, dense, fraction, unit_layers(dense, structure, model.output_layer_names))
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if name in mask:
                parameter.mul_(mask[name])
    return mask


def test_mlp_neurons_are_removed_with_their_constants_folded():
    model = build("mnist_lenet_12_8", (1, 4, 4))
    mask = zero_units(model, "neurons", 0.5)
    assert (~mask["fc_layers.0.weight"].any(dim=1)).sum() == 6 and (~mask["fc_layers.1.weight"].any(dim=1)).sum() == 4
    small = compact(model, (1, 4, 4))
    assert small.fc_layers[0].weight.shape == (6, 16) and small.fc_layers[1].weight.shape == (4, 6)
    assert small.fc.weight.shape == (10, 4)
    x = torch.randn(32, 1, 4, 4, dtype=torch.float64)
    torch.testing.assert_close(small(x), model(x), rtol=0, atol=1e-12)
    # by hand: 16*6+6 + 6*4+4 + 4*10+10 parameters; MACs are the weights' entries
    assert size_of(small, (1, 4, 4)).parameters == 16 * 6 + 6 + 6 * 4 + 4 + 4 * 10 + 10
    assert size_of(small, (1, 4, 4)).macs == 16 * 6 + 6 * 4 + 4 * 10
    assert size_of(model, (1, 4, 4)).macs == 16 * 12 + 12 * 8 + 8 * 10


def test_lenet5_filters_are_removed_through_pooling_and_the_flatten():
    model = build("fashionmnist_lenet5", (1, 28, 28))
    dense_size = size_of(model, (1, 28, 28))
    # by hand: conv1 6x25 at 24x24, conv2 16x6x9 at 10x10, fc 400x120, 120x84, 84x10
    assert dense_size.macs == 150 * 576 + 864 * 100 + 48000 + 10080 + 840
    assert dense_size.parameters == 60170 and dense_size.flops == 2 * dense_size.macs
    zero_units(model, "filters", 0.5)
    small = compact(model, (1, 28, 28))
    assert small.conv1.weight.shape == (3, 1, 5, 5) and small.conv2.weight.shape == (8, 3, 3, 3)
    assert small.fc_layers[0].weight.shape == (120, 8 * 25)
    x = torch.randn(8, 1, 28, 28, dtype=torch.float64)
    torch.testing.assert_close(small(x), model(x), rtol=0, atol=1e-10)
    assert size_of(small, (1, 28, 28)).macs == 75 * 576 + 8 * 27 * 100 + 200 * 120 + 10080 + 840


def test_nothing_to_remove_keeps_the_model_as_it_is():
    model = build("mnist_lenet_6", (3,), classes=2)
    small = compact(model, (3,))
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), small.parameters()))


def test_a_padded_convolution_keeps_a_dead_filter_with_a_nonzero_constant():
    class Padded(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = torch.nn.Conv2d(1, 2, 3)
            self.conv2 = torch.nn.Conv2d(2, 2, 3, padding=1)
            self.fc = torch.nn.Linear(2 * 4 * 4, 3)

        def forward(self, x):
            return self.fc(torch.relu(self.conv2(torch.relu(self.conv1(x)))).flatten(1))

    torch.manual_seed(0)
    model = Padded().double()
    with torch.no_grad():
        model.conv1.weight[0] = 0
        model.conv1.bias[0] = 0.7  # relu(0.7) = 0.7 everywhere: the padding would see less of it
    small = compact(model, (1, 6, 6))
    assert small.conv1.weight.shape[0] == 2
    with torch.no_grad():
        model.conv1.bias[0] = -0.7  # relu(-0.7) = 0: free to remove
    assert compact(model, (1, 6, 6)).conv1.weight.shape[0] == 1
    x = torch.randn(4, 1, 6, 6, dtype=torch.float64)
    torch.testing.assert_close(compact(model, (1, 6, 6))(x), model(x), rtol=0, atol=1e-12)


def test_unit_layers_leave_out_outputs_and_refuse_when_none_is_left():
    model = build("mnist_lenet_6", (3,), classes=2)
    dense = Mask.ones_like(model)
    assert unit_layers(dense, "neurons", model.output_layer_names) == ["fc_layers.0.weight"]
    with pytest.raises(Exception, match="found no layer"):
        unit_layers(dense, "filters", model.output_layer_names)
