"""The ViT family: its parameter count by hand, its patches by hand, its attention against an
explicit softmax(QK^T / sqrt(d)) V, its prunable layers, names, recipe and errors."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch

from foundations.errors import UserError
from models import registry, vit


def get(name, shape=(1, 28, 28), classes=10, seed=0):
    h = SimpleNamespace(model_name=name, model_init="pytorch", batchnorm_init="uniform", batchnorm_frozen=False,
                        output_frozen=False)
    return registry.get(h, shape, classes, seed)


def count(model):
    return sum(p.numel() for p in model.parameters())


def test_parameter_count_by_hand():
    # mnist_vit_2_32_p7: 1 channel, 16 patches of 7x7, width 32, 1 head, MLP 128, 10 classes
    patch = 32 * 1 * 7 * 7 + 32                     # conv weight + bias
    cls, pos = 32, (16 + 1) * 32
    block = (2 * 32                                 # norm1
             + 32 * 96 + 96 + 32 * 32 + 32           # qkv, proj
             + 2 * 32                               # norm2
             + 32 * 128 + 128 + 128 * 32 + 32)       # fc1, fc2
    head = 2 * 32 + 32 * 10 + 10                    # final norm + fc
    assert patch + cls + pos + 2 * block + head == 27_978
    assert count(get("mnist_vit_2_32_p7")) == 27_978
    # 3-channel 32x32 with 4x4 patches: 64 patches; 100 classes; 2 heads change nothing in the count
    cifar = get("cifar100_vit_1_64_h2", (3, 32, 32), 100)
    expected = (64 * 48 + 64) + 64 + 65 * 64 + (4 * 64 + 64 * 192 + 192 + 64 * 64 + 64 + 64 * 256 + 256
                                                + 256 * 64 + 64) + (2 * 64 + 64 * 100 + 100)
    assert count(cifar) == expected


def test_patch_embedding_of_a_hand_built_image():
    # a 1x4x4 image, 2x2 patches, width 4: an identity patch embedding gives each patch's pixels in
    # raster order, the class token (zero) first
    model = vit.ViT(1, 4, 2, depth=1, width=4, heads=1, num_classes=3)
    with torch.no_grad():
        model.patch_embed.weight.copy_(torch.eye(4).view(4, 1, 2, 2))
        model.patch_embed.bias.zero_()
        model.pos_embed.zero_()
    image = torch.arange(16.0).view(1, 1, 4, 4)
    expected = torch.tensor([[0, 0, 0, 0], [0, 1, 4, 5], [2, 3, 6, 7], [8, 9, 12, 13], [10, 11, 14, 15.0]])
    assert torch.equal(model.tokens(image)[0], expected)
    with torch.no_grad():
        model.pos_embed.fill_(1.0)
    assert torch.equal(model.tokens(image)[0], expected + 1)


def test_attention_through_sdpa_equals_the_explicit_formula():
    torch.manual_seed(0)
    attention = vit.Attention(width=8, heads=2)
    x = torch.randn(3, 5, 8)
    q, k, v = attention.qkv(x).split(8, dim=-1)
    heads = []
    for h in range(2):
        part = slice(4 * h, 4 * h + 4)
        weights = torch.softmax(q[..., part] @ k[..., part].transpose(1, 2) / math.sqrt(4), dim=-1)
        heads.append(weights @ v[..., part])
    expected = attention.proj(torch.cat(heads, dim=-1))
    torch.testing.assert_close(attention(x), expected, rtol=1e-5, atol=1e-6)


def test_prunable_layers_are_the_projections_the_mlps_the_patch_embedding_and_the_head():
    model = get("fashionmnist_vit_2_32_p7")
    expected = ["patch_embed.weight"]
    for i in range(2):
        expected += [f"blocks.{i}.attn.qkv.weight", f"blocks.{i}.attn.proj.weight", f"blocks.{i}.mlp.fc1.weight",
                     f"blocks.{i}.mlp.fc2.weight"]
    assert model.prunable_layer_names == [*expected, "fc.weight"]
    assert model.output_layer_names == ["fc.weight", "fc.bias"]
    unprunable = set(model.state_dict()) - set(model.prunable_layer_names)
    assert {"cls_token", "pos_embed", "norm.weight", "blocks.0.norm1.weight"} <= unprunable


@pytest.mark.parametrize("name, spec", [
    ("fashionmnist_vit_4_64_p7", vit.ViTSpec("fashionmnist", 4, 64, 7, 2)),
    ("mnist_vit_1_16", vit.ViTSpec("mnist", 1, 16, 4, 1)),
    ("cifar_vit_6_192", vit.ViTSpec("cifar10", 6, 192, 4, 6)),
    ("cifar100_vit_2_96_p8_h4", vit.ViTSpec("cifar100", 2, 96, 8, 4)),
])
def test_names(name, spec):
    assert vit.parse(name) == spec
    assert sum(family.parse(name) is not None for family in registry.families()) == 1


@pytest.mark.parametrize("name", ["vit_4_64", "mnist_vit_4", "mnist_vit_0_64", "mnist_vit_4_64_h3",
                                  "svhn_vit_4_64", "mnist_vit_4_64_p0", "mnist_vit_4_64_h2_p7"])
def test_invalid_names_are_user_errors(name):
    assert not registry.exists(name)
    with pytest.raises(UserError):
        get(name)


@pytest.mark.parametrize("name, shape", [("mnist_vit_1_16_p5", (1, 28, 28)), ("cifar_vit_1_16_p7", (3, 32, 32)),
                                         ("mnist_vit_1_16", (1, 28, 14))])
def test_a_patch_that_does_not_fit_is_one_line(name, shape):
    with pytest.raises(UserError) as error:
        get(name, shape)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("name, shape", [("mnist_vit_2_32_p4", (1, 28, 28)), ("mnist_vit_2_32_p7", (1, 28, 28)),
                                         ("cifar_vit_2_32", (3, 32, 32))])
def test_forward_and_backward(name, shape):
    model = get(name, shape)
    logits = model(torch.rand(5, *shape))
    assert logits.shape == (5, 10) and torch.isfinite(logits).all()
    logits.sum().backward()
    assert all(p.grad is not None for p in model.parameters())


def test_same_seed_same_weights():
    first, second = get("mnist_vit_1_16", seed=3).state_dict(), get("mnist_vit_1_16", seed=3).state_dict()
    other = get("mnist_vit_1_16", seed=4).state_dict()
    assert all(torch.equal(first[k], second[k]) for k in first)
    assert not torch.equal(first["pos_embed"], other["pos_embed"])
    assert torch.equal(first["cls_token"], torch.zeros(1, 1, 16))


def test_recipe():
    recipe = registry.default_hparams("fashionmnist_vit_4_64_p7")
    assert recipe["dataset"] == {"dataset_name": "fashionmnist", "batch_size": 128}
    assert recipe["model"]["model_init"] == "pytorch"
    assert recipe["training"] == {"optimizer_name": "adamw", "lr": 1e-3, "weight_decay": 0.05,
                                  "training_steps": "50ep", "warmup_steps": "5ep", "lr_schedule": "cosine",
                                  "final_lr": 1e-5, "label_smoothing": 0.1}
    assert registry.default_hparams("cifar_vit_6_192")["training"]["training_steps"] == "200ep"
