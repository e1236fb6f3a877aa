"""Pretrained trunks: a Hugging Face `save_pretrained` directory (GPT-2, DistilBERT, ViT) as the start.

Names: `[<dataset>_]hf`, e.g. `fortunes_hf`, `cifar100_hf`, with `--pretrained=<directory>`: the
architecture and the weights come from the directory (config.json's model_type picks GPT-2,
DistilBERT or ViT; models/huggingface_checkpoint.py reads it, models/huggingface_networks.py wraps
it). The run hash holds the directory's digest (`--pretrained_digest`, foundations/bundles.py), not
its path: moving the directory keeps the trunk, changing a weight makes a new one. Weights are kept
as loaded (`--model_init=pytorch`, which the recipe sets; any other refuses), except a new
classification head where the dataset's classes differ from the checkpoint's labels.

`transformers` is the optional extra `hf` (`pip install -e .[hf]`). The recipe (ours: a common
fine-tuning setup) is AdamW with warmup and cosine decay at a small learning rate.
"""

from __future__ import annotations

import re
from typing import NamedTuple, Optional

import datasets.registry as datasets_registry
from foundations.errors import UserError
from models import huggingface_checkpoint as checkpoint
from models.base import InputShape, Model, ModelFamily
from models.huggingface_networks import wrap

NAME = "huggingface"
SUMMARY = "pretrained Hugging Face trunk (GPT-2, DistilBERT, ViT) from a save_pretrained directory (--pretrained)"

_MODEL_NAME = re.compile(r"(?:([a-z0-9]+)_)?hf")


class HFSpec(NamedTuple):
    dataset_name: Optional[str]
    pretrained: Optional[str] = None  # filled from --pretrained by models/registry.py


def parse(name: str) -> Optional[HFSpec]:
    match = _MODEL_NAME.fullmatch(name)
    if match is None or (match[1] is not None and match[1] not in datasets_registry.names()):
        return None
    return HFSpec(match[1])


def build(spec: HFSpec, input_shape: InputShape, num_classes: int) -> Model:
    if spec.pretrained is None:
        raise UserError("a <dataset>_hf model starts from a checkpoint: give --pretrained=<directory written by "
                        "save_pretrained>")
    task = datasets_registry.info(spec.dataset_name).task if spec.dataset_name else None
    model, model_type = checkpoint.load(spec.pretrained)
    return wrap(model, model_type, input_shape, num_classes, task, spec.pretrained)


def default_hparams(name: str, spec: HFSpec) -> dict:
    """Fine-tuning: AdamW, linear warmup then cosine decay; the checkpoint's weights kept."""
    if spec.dataset_name is None:
        raise UserError(f"--default_hparams={name} names no dataset, so it has no recipe: write it with the dataset, "
                        f"e.g. fortunes_{name} or cifar10_{name}")
    model = {"model_name": name, "model_init": "pytorch", "bias_init": "pytorch"}
    if datasets_registry.info(spec.dataset_name).task == "language_modeling":
        return {"dataset": {"dataset_name": spec.dataset_name, "batch_size": 16},
                "model": model,
                "training": {"optimizer_name": "adamw", "lr": 1e-4, "weight_decay": 0.01, "training_steps": "2000it",
                             "warmup_steps": "100it", "lr_schedule": "cosine"},
                "pruning": {}}
    return {"dataset": {"dataset_name": spec.dataset_name, "batch_size": 64},
            "model": model,
            "training": {"optimizer_name": "adamw", "lr": 1e-4, "weight_decay": 0.05, "training_steps": "10ep",
                         "warmup_steps": "1ep", "lr_schedule": "cosine", "label_smoothing": 0.1},
            "pruning": {}}


FAMILY = ModelFamily(
    pattern="[<dataset>_]hf with --pretrained=<dir> (a Hugging Face GPT-2, DistilBERT or ViT checkpoint)",
    parse=parse, build=build, default_hparams=default_hparams)
