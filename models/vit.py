"""A Vision Transformer (Dosovitskiy et al., 2021) for small images, trained from scratch.

Names: `<dataset>_vit_D_W[_pP][_hH]`, dataset mnist, fashionmnist, cifar10 (or cifar) or cifar100;
D transformer blocks of width W, patches of P x P pixels (default 4: 7 x 7 = 49 patches on 28 x 28,
8 x 8 = 64 on 32 x 32; P = 7 gives 16 on 28 x 28) and H attention heads (default W // 32, at least
1; H must divide W). E.g. `fashionmnist_vit_4_64_p7`, `cifar10_vit_6_192`.

    patch_embed: Conv2d(C, W, P, stride P)  -> tokens (N, patches, W)
    prepend cls_token, add pos_embed (learned, one per token)
    blocks.i: x + attn(norm1(x)), then x + mlp(norm2(x))  (pre-norm)
        attn: qkv Linear(W, 3W) -> scaled_dot_product_attention over H heads -> proj Linear(W, W)
        mlp:  fc1 Linear(W, 4W) -> GELU -> fc2 Linear(4W, W)
    norm (LayerNorm) of the class token -> fc Linear(W, classes)

Pooling is the class token's (the paper's); the head is the paper's fine-tuning head, one linear
layer after the final norm. Prunable (Model.prunable_layer_names: every Conv2d and Linear weight):
patch_embed, every qkv, proj, fc1 and fc2, and fc. Not prunable: biases, the LayerNorms, cls_token
and pos_embed. Dropout is not used.

Init: the linear layers and the patch embedding keep PyTorch's default draw (the recipe sets
`--model_init=pytorch`; another `--model_init` redraws them as for any family); pos_embed is drawn
from a normal of std 0.02 truncated at 2 std and cls_token starts at zero (as in timm).

Recipe (ours, a common small-ViT-from-scratch recipe; see docs/transformers.md): AdamW at 1e-3,
weight decay 0.05 (on every parameter: the optimizer has no exclusion list), batch 128, linear
warmup over 5 epochs then cosine decay to 1e-5; 50 epochs on MNIST and Fashion-MNIST, 200 on CIFAR,
cross-entropy with label smoothing 0.1; CIFAR inputs normalized by their own statistics and augmented
(pad-crop and flip) as the dataset does by default.
"""

from __future__ import annotations

import re
from typing import NamedTuple, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from foundations.errors import UserError
from models.base import InputShape, Model, ModelFamily

NAME = "vit"
SUMMARY = "Vision Transformer from scratch: patch conv, class token, pre-norm SDPA blocks (AdamW recipe)"

_DATASETS = {"mnist": "mnist", "fashionmnist": "fashionmnist", "cifar10": "cifar10", "cifar": "cifar10",
             "cifar100": "cifar100"}
_MODEL_NAME = re.compile(rf"({'|'.join(sorted(_DATASETS, key=len, reverse=True))})_vit_([1-9]\d*)_([1-9]\d*)"
                         r"(?:_p([1-9]\d*))?(?:_h([1-9]\d*))?")
DEFAULT_PATCH = 4
HEAD_WIDTH = 32  # default heads: W // 32
MLP_RATIO = 4


class Attention(nn.Module):
    """Multi-head self-attention: one qkv projection, SDPA over the heads, an output projection."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, tokens, width = x.shape
        q, k, v = self.qkv(x).view(n, tokens, 3, self.heads, width // self.heads).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v)  # (n, heads, tokens, head width)
        return self.proj(out.transpose(1, 2).reshape(n, tokens, width))


class Mlp(nn.Module):
    def __init__(self, width: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(width, hidden)
        self.fc2 = nn.Linear(hidden, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class Block(nn.Module):
    """Pre-norm transformer block: x + attn(norm1(x)), then x + mlp(norm2(x))."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(width)
        self.attn = Attention(width, heads)
        self.norm2 = nn.LayerNorm(width)
        self.mlp = Mlp(width, MLP_RATIO * width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class ViT(Model):
    """patch_embed, cls_token, pos_embed, blocks.0 ... blocks.D-1, norm, fc (module docstring)."""

    def __init__(self, in_channels: int, image_size: int, patch: int, depth: int, width: int, heads: int,
                 num_classes: int) -> None:
        super().__init__()
        patches = (image_size // patch) ** 2
        self.patch_embed = nn.Conv2d(in_channels, width, kernel_size=patch, stride=patch)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, width))
        self.pos_embed = nn.Parameter(torch.empty(1, patches + 1, width))
        nn.init.trunc_normal_(self.pos_embed, std=0.02, a=-0.04, b=0.04)
        self.blocks = nn.Sequential(*(Block(width, heads) for _ in range(depth)))
        self.norm = nn.LayerNorm(width)
        self.fc = nn.Linear(width, num_classes)

    def tokens(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) images -> (N, 1 + patches, width): the class token, then the patches in raster
        order, with the position embeddings added."""
        patches = self.patch_embed(x).flatten(2).transpose(1, 2)
        cls = self.cls_token.expand(x.shape[0], -1, -1)
        return torch.cat([cls, patches], dim=1) + self.pos_embed

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.norm(self.blocks(self.tokens(x))[:, 0]))


class ViTSpec(NamedTuple):
    dataset_name: str
    depth: int
    width: int
    patch: int
    heads: int


def parse(name: str) -> Optional[ViTSpec]:
    match = _MODEL_NAME.fullmatch(name)
    if match is None:
        return None
    depth, width = int(match.group(2)), int(match.group(3))
    patch = int(match.group(4) or DEFAULT_PATCH)
    heads = int(match.group(5) or max(1, width // HEAD_WIDTH))
    if width % heads:
        return None  # the registry's error lists the pattern, which says H must divide W
    return ViTSpec(_DATASETS[match.group(1)], depth, width, patch, heads)


def build(spec: ViTSpec, input_shape: InputShape, num_classes: int) -> ViT:
    if len(input_shape) != 3 or input_shape[1] != input_shape[2]:
        raise UserError(f"a ViT takes square images (C, H, H); this dataset's examples have shape {input_shape}")
    size = input_shape[-1]
    if size % spec.patch:
        divisors = [p for p in range(2, size + 1) if size % p == 0 and p < size]
        raise UserError(f"patch size {spec.patch} does not divide the image size {size}: name a patch size with "
                        f"_pP, one of {divisors}")
    return ViT(input_shape[0], size, spec.patch, spec.depth, spec.width, spec.heads, num_classes)


_EPOCHS = {"mnist": "50ep", "fashionmnist": "50ep", "cifar10": "200ep", "cifar100": "200ep"}


def default_hparams(name: str, spec: ViTSpec) -> dict:
    training = {"optimizer_name": "adamw", "lr": 1e-3, "weight_decay": 0.05, "training_steps": _EPOCHS[
        spec.dataset_name], "warmup_steps": "5ep", "lr_schedule": "cosine", "final_lr": 1e-5,
        "label_smoothing": 0.1}
    return {
        "dataset": {"dataset_name": spec.dataset_name, "batch_size": 128},
        "model": {"model_name": name, "model_init": "pytorch", "batchnorm_init": "uniform"},
        "training": training,
        "pruning": {},
    }


FAMILY = ModelFamily(
    pattern="<dataset>_vit_D_W[_pP][_hH] (ViT: D blocks of width W, P x P patches (4), H heads (W // 32); "
            "H divides W)",
    parse=parse, build=build, default_hparams=default_hparams)
