"""Parameters and forward FLOPs of whole networks (training/compute.py) against hand counts."""

from __future__ import annotations

import time

import pytest
import torch

import models.registry as models_registry
from foundations.bundles import ModelHparams
from training.compute import compute_record


def _model(name: str, input_shape, classes: int = 10) -> torch.nn.Module:
    return models_registry.get(ModelHparams(model_name=name), input_shape, classes, seed=0)


def test_lenet_300_100_by_hand():
    model = _model("mnist_lenet_300_100", (1, 28, 28))
    record = compute_record(model, torch.zeros(1, 28, 28))
    macs = 784 * 300 + 300 * 100 + 100 * 10  # = 266200
    assert record["forward_flops_dense"] == 2 * macs == 532400
    assert record["forward_flops"] == pytest.approx(2 * macs)  # dense weights: no zeros
    assert record["speedup"] == pytest.approx(1.0)
    assert record["parameters"] == macs + 300 + 100 + 10 == 266610
    assert record["prunable"] == macs and record["nonzero_prunable"] == macs


def test_cifar_resnet_20_by_hand():
    model = _model("cifar_resnet_20", (3, 32, 32))
    record = compute_record(model, torch.zeros(3, 32, 32), examples_seen=5)
    stem = 32 * 32 * 16 * 3 * 9
    stage1 = 6 * (32 * 32 * 16 * 16 * 9)
    stage2 = 32 * 32 // 4 * 32 * 16 * 9 + 5 * (16 * 16 * 32 * 32 * 9) + 16 * 16 * 32 * 16  # + 1x1 shortcut
    stage3 = 8 * 8 * 64 * 32 * 9 + 5 * (8 * 8 * 64 * 64 * 9) + 8 * 8 * 64 * 32
    macs = stem + stage1 + stage2 + stage3 + 64 * 10
    assert macs == 40_813_184  # the ~41M multiply-accumulates ResNet-20 is usually quoted at
    assert record["forward_flops_dense"] == 2 * macs
    assert record["training_flops"] == pytest.approx(3 * 2 * macs * 5)
    convs = 16 * 3 * 9 + 6 * 16 * 16 * 9 + 32 * 16 * 9 + 5 * 32 * 32 * 9 + 32 * 16 + 64 * 32 * 9 + 5 * 64 * 64 * 9 \
        + 64 * 32
    assert record["prunable"] == convs + 64 * 10


def test_a_masked_layer_scales_with_its_density():
    model = _model("mnist_lenet_300_100", (1, 28, 28))
    with torch.no_grad():
        name = next(n for n in model.prunable_layer_names if model.state_dict()[n].shape == (300, 784))
        weight = dict(model.named_parameters())[name]
        weight[:, : 784 // 4 * 3] = 0  # a quarter of the first layer kept
    record = compute_record(model, torch.zeros(1, 28, 28))
    masked = 2 * (784 * 300 / 4 + 300 * 100 + 100 * 10)
    assert record["forward_flops"] == pytest.approx(masked)
    assert record["speedup"] == pytest.approx(532400 / masked)
    assert record["nonzero_prunable"] == 784 * 300 // 4 + 300 * 100 + 100 * 10


def test_counted_once_cheaply():
    """The one-time cost at the end of a run (a few forward passes of one example)."""
    model = _model("cifar_resnet_20", (3, 32, 32))
    started = time.perf_counter()
    compute_record(model, torch.zeros(3, 32, 32), examples_seen=1)
    assert time.perf_counter() - started < 5


def test_a_count_that_fails_never_costs_the_finished_run(cli, monkeypatch):
    import json

    import training.loop
    from tests.conftest import TINY

    def broken(*args, **kwargs):
        raise RuntimeError("no FLOP formula for this op")

    monkeypatch.setattr(training.loop, "compute_record", broken)
    code, out, err = cli("train", *TINY)
    assert code == 0, err
    assert "FLOPs not counted for LeNet: RuntimeError: no FLOP formula for this op" in err
    [done] = cli.root.rglob("done.json")
    record = json.loads(done.read_text())
    assert "compute" not in record and "test_accuracy" in record["metrics"]
