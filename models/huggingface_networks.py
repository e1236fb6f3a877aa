"""Thin wrappers that make a loaded transformers model a `Model`: plain tensors in, logits out.

Each wrapper adopts the transformers model's children as its own, so state_dict keys are the ones
transformers uses (`transformer.h.0.attn.c_attn.weight`, `vit.encoder.layer.0.attention...`), and
its forward reproduces the transformers head on them (the tests compare the logits):

    GPT2Trunk        (N, T) int64 token ids -> (N, T, vocabulary): models/gpt.py's contract
    DistilBertTrunk  (N, T) int64 token ids -> (N, classes): [CLS] -> pre_classifier, ReLU -> classifier
    ViTTrunk         (N, C, H, W) images -> (N, classes): the class token's final state -> classifier

Prunable by default (`Model.prunable_layer_names`): every Linear and Conv2d weight (GPT-2's Conv1D
layers are Linear by now, see models/huggingface_checkpoint.py): the attention and MLP projections,
ViT's patch projection and an untied head; not embeddings, norms, biases, nor a head tied to the
token embedding (GPT-2's default). A classification head whose size differs from the dataset's
classes is replaced by a new one, N(0, initializer_range^2) weights and zero biases, drawn from
the registry's seeded generator.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from foundations.errors import UserError
from models.base import InputShape, Model


class PretrainedTrunk(Model):
    """A transformers model's children, registered as this module's own."""

    def __init__(self, model: nn.Module, output_module: str) -> None:
        super().__init__()
        for name, child in model.named_children():
            self.add_module(name, child)
        self.config: Any = model.config
        self.output_module = output_module

    def _token_ids(self, tokens: torch.Tensor) -> torch.Tensor:
        if tokens.is_floating_point():
            raise UserError(f"the pretrained {self.config.model_type} takes integer token ids, not real-valued "
                            "inputs: a data-free score that feeds an all-ones input (synflow) is undefined for it; "
                            "use magnitude, random or a data score")
        return tokens

    def new_head(self, name: str, num_classes: int) -> None:
        """Replace the Linear `name` by a fresh one with `num_classes` outputs (a transferred trunk)."""
        old = self.get_submodule(name)
        head = nn.Linear(old.in_features, num_classes)
        nn.init.normal_(head.weight, std=getattr(self.config, "initializer_range", 0.02))
        nn.init.zeros_(head.bias)
        setattr(self, name, head)


class GPT2Trunk(PretrainedTrunk):
    def __init__(self, model: nn.Module) -> None:
        tied = model.lm_head.weight is model.transformer.wte.weight
        super().__init__(model, "transformer.wte" if tied else "lm_head")  # a tied head is the embedding
        self.tied = tied
        self.context = int(self.config.n_positions)

    @property
    def prunable_layer_names(self) -> list[str]:
        names = super().prunable_layer_names
        return [name for name in names if not (self.tied and name == "lm_head.weight")]

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        tokens = self._token_ids(tokens)
        if tokens.shape[-1] > self.context:
            raise UserError(f"windows of {tokens.shape[-1]} tokens exceed the checkpoint's context of "
                            f"{self.context} (n_positions): lower --context_length")
        hidden = self.transformer(input_ids=tokens, use_cache=False)[0]
        return self.lm_head(hidden)


class DistilBertTrunk(PretrainedTrunk):
    def __init__(self, model: nn.Module) -> None:
        super().__init__(model, "classifier")
        self.context = int(self.config.max_position_embeddings)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        hidden = self.distilbert(input_ids=self._token_ids(tokens))[0]
        pooled = self.dropout(F.relu(self.pre_classifier(hidden[:, 0])))
        return self.classifier(pooled)


class ViTTrunk(PretrainedTrunk):
    def __init__(self, model: nn.Module, image_size: int) -> None:
        super().__init__(model, "classifier")
        self.interpolate = image_size != int(self.config.image_size)  # other sizes: positions interpolated

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        hidden = self.vit(pixel_values=images, interpolate_pos_encoding=self.interpolate)[0]
        return self.classifier(hidden[:, 0])


def wrap(model: nn.Module, model_type: str, input_shape: InputShape, num_classes: int, task: str | None,
         directory: str) -> PretrainedTrunk:
    """The wrapper of a loaded checkpoint for a dataset of `input_shape` examples and `num_classes`
    outputs (its `task` when known); one UserError line where the two do not fit."""
    config = model.config
    where = f"--pretrained={directory}"
    if model_type == "gpt2":
        if task not in (None, "language_modeling") or len(input_shape) != 1:
            raise UserError(f"{where} is a GPT-2 language model: train it on a text corpus such as fortunes")
        if config.vocab_size != num_classes:
            raise UserError(f"{where} has a vocabulary of {config.vocab_size} tokens but the corpus has {num_classes} "
                            "(byte-level): its own tokenizer is not wired to the corpus yet; use a checkpoint with "
                            f"vocab_size={num_classes}")
        return GPT2Trunk(model)
    if model_type == "distilbert":
        if task == "language_modeling":
            raise UserError(f"{where} is DistilBERT, a bidirectional encoder (it would see the next token): "
                            "next-token prediction needs a GPT-2 checkpoint")
        if task not in (None, "classification") or len(input_shape) != 1:
            raise UserError(f"{where} is DistilBERT, a text classifier: it needs a dataset of token-id sequences")
        trunk = DistilBertTrunk(model)
        if input_shape[0] > trunk.context:
            raise UserError(f"{where} takes at most {trunk.context} tokens; the dataset's examples have "
                            f"{input_shape[0]}")
    else:
        channels = int(config.num_channels)
        if task not in (None, "classification") or len(input_shape) != 3 or input_shape[0] != channels \
                or input_shape[1] != input_shape[2]:
            raise UserError(f"{where} is a ViT for square images of {channels} channel(s); this dataset's examples "
                            f"have shape {tuple(input_shape)}")
        if input_shape[-1] % int(config.patch_size):
            raise UserError(f"{where} has {config.patch_size}-pixel patches, which do not divide the dataset's "
                            f"{input_shape[-1]}-pixel images")
        trunk = ViTTrunk(model, input_shape[-1])
    if trunk.classifier.out_features != num_classes:
        trunk.new_head("classifier", num_classes)
    return trunk
