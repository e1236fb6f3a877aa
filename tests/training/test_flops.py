"""Forward FLOPs per example (training/flops.py) of a tiny MLP, counted by hand."""

from __future__ import annotations

import pytest
import torch

from training.flops import forward_flops


class Tiny(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.hidden = torch.nn.Linear(4, 6)
        self.out = torch.nn.Linear(6, 3)

    def forward(self, x):
        return self.out(torch.sigmoid(self.hidden(x)))


def test_dense_and_pruned_flops_by_hand():
    model = Tiny()
    # 2 FLOPs per multiply-accumulate: 2 (4 x 6 + 6 x 3) = 84; biases and the sigmoid are not counted.
    assert forward_flops(model, torch.zeros(4)) == 84
    masks = {"hidden.weight": torch.ones(6, 4), "out.weight": torch.ones(3, 6)}
    masks["hidden.weight"][0, :2] = 0  # 2 of 24: 48 * 22/24 = 44
    masks["out.weight"][:, :3] = 0  # 9 of 18: 36 / 2 = 18
    assert forward_flops(model, torch.zeros(4), masks) == pytest.approx(44 + 18)
    assert model.training  # the mode is restored


def test_attention_products_are_counted_for_a_vit():
    """mnist_vit_2_32_p7 by hand: 17 tokens (16 patches of 7x7 and the class token), width 32, 2 blocks.
    The patch conv 2*49*32*16; per block qkv 2*17*32*96, proj 2*17*32*32, the MLP 2 * 2*17*32*128, and
    attention's two products (Q K^T and A V) 2 * 2*17*17*32, which the fused CPU kernel would hide;
    the head 2*32*10."""
    from types import SimpleNamespace

    from models import registry
    from training.flops import forward_flops

    h = SimpleNamespace(model_name="mnist_vit_2_32_p7", model_init="pytorch", batchnorm_init="uniform",
                        bias_init="pytorch", batchnorm_frozen=False, output_frozen=False)
    model = registry.get(h, (1, 28, 28), 10, 0)
    block = 2 * 17 * 32 * 96 + 2 * 17 * 32 * 32 + 2 * (2 * 17 * 32 * 128) + 2 * (2 * 17 * 17 * 32)
    assert forward_flops(model, torch.rand(1, 28, 28)) == 2 * 49 * 32 * 16 + 2 * block + 2 * 32 * 10


def test_a_small_gpt_by_hand():
    """gpt_2_32_c16 over 16 byte tokens (vocabulary 256), width 32, 2 blocks: per block qkv
    2*16*32*96, proj 2*16*32*32, the MLP 2 * 2*16*32*128 and attention's two 16x16 products
    2 * 2*16*16*32; the untied head 2*16*32*256; the embeddings are lookups (no FLOPs)."""
    from types import SimpleNamespace

    from models import registry
    from training.flops import forward_flops

    h = SimpleNamespace(model_name="gpt_2_32_c16", model_init="pytorch", batchnorm_init="uniform",
                        bias_init="pytorch", batchnorm_frozen=False, output_frozen=False)
    model = registry.get(h, (16,), 256, 0)
    block = 2 * 16 * 32 * 96 + 2 * 16 * 32 * 32 + 2 * (2 * 16 * 32 * 128) + 2 * (2 * 16 * 16 * 32)
    assert forward_flops(model, torch.zeros(16, dtype=torch.long)) == 2 * block + 2 * 16 * 32 * 256
