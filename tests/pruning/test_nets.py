"""Tiny models and data shared by the pruning tests (imported by the other test_pruning*/test_scores*
files), plus checks that they expose what pruning reads from a model."""

import torch
from torch import nn


class TinyMLP(nn.Module):
    """4 -> 6 -> 5 -> 3 with ReLU; `fc` is the output layer."""

    def __init__(self, seed: int = 0):
        super().__init__()
        torch.manual_seed(seed)
        self.fc1, self.fc2, self.fc = nn.Linear(4, 6), nn.Linear(6, 5), nn.Linear(5, 3)
        self.prunable_layer_names = ["fc1.weight", "fc2.weight", "fc.weight"]
        self.output_layer_names = ["fc.weight", "fc.bias"]

    def forward(self, x):
        x = x.flatten(1)
        return self.fc(torch.relu(self.fc2(torch.relu(self.fc1(x)))))


class TinyCNN(nn.Module):
    """conv(1->4) BN ReLU, conv(4->6) BN ReLU, global average pool, linear(6->3)."""

    def __init__(self, seed: int = 0):
        super().__init__()
        torch.manual_seed(seed)
        self.conv1, self.bn1 = nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4)
        self.conv2, self.bn2 = nn.Conv2d(4, 6, 3, padding=1), nn.BatchNorm2d(6)
        self.fc = nn.Linear(6, 3)
        self.prunable_layer_names = ["conv1.weight", "conv2.weight", "fc.weight"]
        self.output_layer_names = ["fc.weight", "fc.bias"]

    def forward(self, x):
        x = torch.relu(self.bn1(self.conv1(x)))
        x = torch.relu(self.bn2(self.conv2(x)))
        return self.fc(x.mean(dim=(2, 3)))


class PerClassExamples:
    """A labelled set with the datasets Loader's `examples_per_class(n, seed)`: n seeded examples
    of each class, grouped by class."""

    def __init__(self, inputs: torch.Tensor, labels: torch.Tensor):
        self.inputs, self.labels = inputs, labels

    def examples_per_class(self, n: int, seed: int):
        generator = torch.Generator().manual_seed(seed)
        chosen = []
        for label in self.labels.unique(sorted=True):
            where = (self.labels == label).nonzero().squeeze(1)
            chosen.append(where[torch.randperm(where.numel(), generator=generator)[:n]])
        index = torch.cat(chosen)
        return self.inputs[index], self.labels[index]


def labelled_data(shape=(4,), classes: int = 3, per_class: int = 8, seed: int = 0) -> PerClassExamples:
    generator = torch.Generator().manual_seed(seed)
    labels = torch.arange(classes).repeat_interleave(per_class)
    return PerClassExamples(torch.randn((labels.numel(), *shape), generator=generator), labels)


def test_prunable_names_are_state_dict_weights():
    for model in (TinyMLP(), TinyCNN()):
        state = model.state_dict()
        assert all(name in state and state[name].dim() >= 2 for name in model.prunable_layer_names)
        x = torch.zeros(2, 1, 4, 4) if isinstance(model, TinyCNN) else torch.zeros(2, 4)
        assert model(x).shape == (2, 3)


def test_examples_per_class_draws_n_of_each_class_reproducibly():
    data = labelled_data()
    x, y = data.examples_per_class(2, seed=5)
    assert y.tolist() == [0, 0, 1, 1, 2, 2]
    assert torch.equal(x, data.examples_per_class(2, seed=5)[0])
    assert not torch.equal(x, data.examples_per_class(2, seed=6)[0])
