"""The SpaM recipes feed the authors' inputs to the authors' initialization (models/lenet5.py, spam_mlp.py)."""

from __future__ import annotations

import pytest

from models import registry


@pytest.mark.parametrize("name, inputs", [
    ("fashionmnist_lenet5", "unit"),  # ToTensor() alone: pixels in [0, 1]
    ("mnist_lenet5", "unit"),
    ("cifar10_lenet5", None),  # their CIFAR-10 LeNet is normalized: ours by the dataset's statistics
    ("fashionmnist_mlp_256", "unit"),
    ("mnist_mlp_256", "unit"),
    ("breastcancer_cancernet", "raw"),  # the table as scikit-learn gives it, unstandardized
    ("iris_mlp_16", None),  # not in their code: standardized
])
def test_authors_inputs_and_pytorch_init(name, inputs):
    recipe = registry.default_hparams(name)
    assert recipe["dataset"].get("input_normalization") == inputs
    assert recipe["model"]["model_init"] == "pytorch"
