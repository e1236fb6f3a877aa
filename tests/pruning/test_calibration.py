"""Calibration examples are seeded draws from the training split; steps group a model's blocks;
a step's captured inputs are those of its layers in the network's own forward."""

from __future__ import annotations

import torch

import datasets.registry
from datasets.text_loader import window_starts
from foundations.bundles import DatasetHparams
from models import gpt
from pruning.post_training.calibration import CalibrationData, calibration_examples, capture, pruning_steps

TEXT = "".join(f"{i}: the quick brown fox jumps over the lazy dog.\n%\n" for i in range(200))


def test_corpus_windows_are_seeded_training_windows(tmp_path):
    (tmp_path / "fortunes").mkdir()
    (tmp_path / "fortunes" / "a").write_text(TEXT)
    h = DatasetHparams(dataset_name="fortunes", batch_size=4, context_length=16, transformation_seed=3)
    train = datasets.registry.get(h, "train", root=tmp_path, device="cpu")
    windows = calibration_examples(train, 5, seed=7)
    starts = window_starts(train.tokens.numel(), 16, 5, 7, "calibration")
    assert torch.equal(windows, torch.stack([train.tokens[s:s + 16] for s in starts.tolist()]).long())
    assert torch.equal(windows, calibration_examples(train, 5, seed=7))
    assert not torch.equal(windows, calibration_examples(train, 5, seed=8))


def test_steps_are_blocks_then_single_layers_and_capture_reads_the_block_inputs():
    torch.manual_seed(0)
    model = gpt.build(gpt.parse("gpt_2_16_h2_c16"), (16,), 256).double()
    names = model.prunable_layer_names
    assert pruning_steps(model, names) == [names[:4], names[4:8], ["fc.weight"]]
    tokens = torch.randint(0, 256, (3, 16))
    statistics = capture(model, names[4:8], CalibrationData(tokens, batch_size=2), gram=True)
    with torch.no_grad():
        x = model.embed(tokens) + model.position(torch.arange(16))
        x = model.blocks[0](x)
        rows = model.blocks[1].ln1(x).reshape(-1, 16)
    assert statistics.rows["blocks.1.qkv.weight"] == 48
    assert torch.allclose(statistics.grams["blocks.1.qkv.weight"], rows.T @ rows)
    assert torch.allclose(statistics.squares["blocks.1.qkv.weight"], rows.square().sum(0))


def test_a_convolution_reads_its_unfolded_patches_in_the_weight_order():
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(2, 3, 3, padding=1, stride=2).double()
    model = torch.nn.Sequential(conv, torch.nn.ReLU())
    x = torch.randn(2, 2, 5, 5, dtype=torch.float64)
    statistics = capture(model, ["0.weight"], CalibrationData(x), gram=True)
    patches = torch.nn.functional.unfold(x, 3, padding=1, stride=2).transpose(1, 2).reshape(-1, 18)
    assert torch.allclose(patches @ conv.weight.flatten(1).T + conv.bias, conv(x).permute(0, 2, 3, 1).reshape(-1, 3))
    assert torch.allclose(statistics.grams["0.weight"], patches.T @ patches)
