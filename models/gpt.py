"""GPT: a decoder-only causal transformer over token ids (pre-norm blocks, learned positions).

Names: `[<dataset>_]gpt_<layers>_<width>[_h<heads>][_c<context>][_tied]`, e.g. `fortunes_gpt_4_128`
(4 blocks of width 128, width/32 heads, 128 positions) or `fortunes_gpt_2_64_h2_c64_tied`, where
`_tied` makes the output head the token embedding's transpose (no head of its own). Input (N, T)
int64 token ids with T <= context; output (N, T, vocabulary) logits; vocabulary is the dataset's
number of classes (256 byte tokens for a corpus).

Attention runs through `scaled_dot_product_attention(is_causal=True)`. Prunable by default: the
attention projections (`qkv`, `proj`) and the MLP's (`fc1`, `fc2`) of every block, plus an untied
head `fc`; embeddings, norms and a tied head are not. The recipe (AdamW, linear warmup, cosine
decay, GPT-2's N(0, 0.02) init) is `default_hparams` here.
"""

from __future__ import annotations

import re
from typing import NamedTuple, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from foundations.errors import UserError
from models.base import InputShape, Model, ModelFamily

NAME = "gpt"
SUMMARY = "decoder-only causal transformer over token ids (language modelling)"

_DATASETS = ("fortunes",)
_MODEL_NAME = re.compile(rf"(?:({'|'.join(_DATASETS)})_)?gpt_([1-9]\d*)_([1-9]\d*)(?:_h([1-9]\d*))?"
                         r"(?:_c([1-9]\d*))?(_tied)?")


class GPTSpec(NamedTuple):
    dataset_name: Optional[str]
    layers: int
    width: int
    heads: int
    context: int
    tied: bool


class Block(nn.Module):
    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.ln1, self.ln2 = nn.LayerNorm(width), nn.LayerNorm(width)
        self.qkv, self.proj = nn.Linear(width, 3 * width), nn.Linear(width, width)
        self.fc1, self.fc2 = nn.Linear(width, 4 * width), nn.Linear(4 * width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, t, c = x.shape
        q, k, v = self.qkv(self.ln1(x)).view(n, t, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        attended = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.proj(attended.transpose(1, 2).reshape(n, t, c))
        return x + self.fc2(F.gelu(self.fc1(self.ln2(x))))


class GPT(Model):
    def __init__(self, vocabulary: int, layers: int, width: int, heads: int, context: int, tied: bool) -> None:
        super().__init__()
        self.context, self.tied = context, tied
        self.embed, self.position = nn.Embedding(vocabulary, width), nn.Embedding(context, width)
        self.blocks = nn.ModuleList(Block(width, heads) for _ in range(layers))
        self.ln_f = nn.LayerNorm(width)
        if tied:
            self.output_module = "embed"  # freezing or keeping "the output layer" means the shared matrix
        else:
            self.fc = nn.Linear(width, vocabulary, bias=False)
        for embedding in (self.embed, self.position):
            nn.init.normal_(embedding.weight, std=0.02)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        if tokens.is_floating_point():
            raise UserError("GPT takes integer token ids, not real-valued inputs: a data-free score that feeds an "
                            "all-ones input (synflow) is undefined for it; use magnitude, random or a data score")
        if tokens.shape[-1] > self.context:
            raise UserError(f"windows of {tokens.shape[-1]} tokens exceed the model's context of {self.context}: "
                            f"lower --context_length or name a model with _c{tokens.shape[-1]}")
        positions = torch.arange(tokens.shape[-1], device=tokens.device)
        x = self.embed(tokens) + self.position(positions)
        for block in self.blocks:
            x = block(x)
        x = self.ln_f(x)
        return F.linear(x, self.embed.weight) if self.tied else self.fc(x)


def parse(name: str) -> Optional[GPTSpec]:
    match = _MODEL_NAME.fullmatch(name)
    if match is None:
        return None
    dataset, layers, width, heads, context, tied = match.groups()
    width = int(width)
    heads = int(heads) if heads else max(1, width // 32)
    if width % heads:
        raise UserError(f"--model_name={name}: the width {width} must be a multiple of the heads ({heads})")
    return GPTSpec(dataset, int(layers), width, heads, int(context) if context else 128, tied is not None)


def build(spec: GPTSpec, input_shape: InputShape, num_classes: int) -> GPT:
    return GPT(num_classes, spec.layers, spec.width, spec.heads, spec.context, spec.tied)


def default_hparams(name: str, spec: GPTSpec) -> dict:
    """A nanoGPT-style recipe: AdamW (weight decay 0.1), warmup then cosine decay, N(0, 0.02) init."""
    if spec.dataset_name is None:
        raise UserError(f"--default_hparams={name} names no dataset, so it has no recipe: write it with the dataset, "
                        f"e.g. fortunes_{name}")
    return {
        "dataset": {"dataset_name": spec.dataset_name, "batch_size": 32, "context_length": spec.context},
        "model": {"model_name": name, "model_init": "normal", "init_std": 0.02, "bias_init": "zero"},
        "training": {"optimizer_name": "adamw", "lr": 1e-3, "training_steps": "2000it", "warmup_steps": "100it",
                     "lr_schedule": "cosine", "weight_decay": 0.1},
        "pruning": {},
    }


FAMILY = ModelFamily(
    pattern="[<dataset>_]gpt_<layers>_<width>[_h<heads>][_c<context>][_tied] (decoder-only transformer)",
    parse=parse, build=build, default_hparams=default_hparams)
