"""Reading a Hugging Face `save_pretrained` directory into a plain PyTorch module.

`transformers` is an optional extra (`pip install -e .[hf]`): it is imported only here, when a
checkpoint is loaded, and its absence is one UserError line. Three architectures are read, chosen
by the `model_type` in config.json:

    gpt2        GPT2LMHeadModel                       token ids -> next-token logits
    distilbert  DistilBertForSequenceClassification   token ids -> class logits
    vit         ViTForImageClassification             images -> class logits

GPT-2's `transformers.pytorch_utils.Conv1D` layers (a Linear whose weight is stored transposed,
(in, out)) are turned into `nn.Linear` layers (weight (out, in)) under the same names, so masks,
N:M groups (along the inputs), neurons (rows), initializers and the FLOP counter see an ordinary
Linear layer. The forward pass computes the same function; the trunk's own weight files hold the
(out, in) layout.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from types import ModuleType

import torch
import torch.nn as nn

from foundations.errors import UserError

INSTALL = "pip install -e .[hf]"
ARCHITECTURES = {"gpt2": "GPT2LMHeadModel", "distilbert": "DistilBertForSequenceClassification",
                 "vit": "ViTForImageClassification"}
WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                "pytorch_model.bin.index.json")


def transformers_module() -> ModuleType:
    """`transformers`, or one UserError line saying how to install it."""
    try:
        import transformers
    except ImportError:
        raise UserError(f"pretrained trunks (--pretrained) need Hugging Face transformers, which is not "
                        f"installed: {INSTALL}") from None
    return transformers


def read_config(directory: str | Path) -> dict:
    """config.json of a checkpoint directory, after checking it is one this module reads."""
    path = Path(directory).expanduser()
    if not path.is_dir():
        raise UserError(f"--pretrained={directory} is not a directory: give one written by save_pretrained")
    try:
        config = json.loads((path / "config.json").read_text())
    except (OSError, ValueError):
        raise UserError(f"--pretrained={directory} has no readable config.json, so it is not a Hugging Face "
                        "checkpoint: give a directory written by save_pretrained") from None
    model_type = config.get("model_type") if isinstance(config, dict) else None
    if model_type not in ARCHITECTURES:
        raise UserError(f"--pretrained={directory} holds a {model_type!r} model; pretrained trunks read "
                        f"{', '.join(ARCHITECTURES)}")
    if not any((path / name).is_file() for name in WEIGHT_FILES):
        raise UserError(f"--pretrained={directory} has a config but no weights ({' or '.join(WEIGHT_FILES[::2])}): "
                        "save the model with save_pretrained")
    return config


def linear_from_conv1d(layer: nn.Module) -> nn.Linear:
    """The nn.Linear computing what a transformers Conv1D computes: weight (out, in) = Conv1D's transposed."""
    weight = layer.weight.detach()
    linear = nn.utils.skip_init(nn.Linear, weight.shape[0], weight.shape[1], device=weight.device,
                                dtype=weight.dtype)
    with torch.no_grad():
        linear.weight.copy_(weight.t())
        linear.bias.copy_(layer.bias.detach())
    linear.weight.requires_grad_(layer.weight.requires_grad)
    linear.bias.requires_grad_(layer.bias.requires_grad)
    return linear


def convert_conv1d(model: nn.Module) -> int:
    """Replace every transformers Conv1D in `model` by its nn.Linear in place; returns how many."""
    conv1d = transformers_module().pytorch_utils.Conv1D
    found = [(name, module) for name, module in model.named_modules() if isinstance(module, conv1d)]
    for name, module in found:
        parent, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent), child, linear_from_conv1d(module))
    return len(found)


def load(directory: str | Path) -> tuple[nn.Module, str]:
    """(the checkpoint's transformers model in float32 on the CPU with Conv1D turned into Linear, its
    model_type). Weights the checkpoint lacks (a new classification head) are drawn by transformers
    from the current RNG state (the registry seeds it)."""
    model_type = read_config(directory)["model_type"]
    transformers = transformers_module()
    model_class = getattr(transformers, ARCHITECTURES[model_type])
    transformers.utils.logging.disable_progress_bar()  # the run's own output stays as --quiet leaves it
    try:
        model = model_class.from_pretrained(str(Path(directory).expanduser()))
    except (OSError, ValueError) as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise UserError(f"--pretrained={directory} could not be loaded by transformers: {first}") from None
    model = model.float().cpu()
    convert_conv1d(model)
    return model, model_type


def save_pretrained(trunk: nn.Module, directory: str | Path) -> None:
    """Write a pretrained trunk's current weights (trained, pruned: zeros stay zeros) as a transformers
    checkpoint in `directory`, its Linear layers that were Conv1D transposed back; a replaced head
    sets the config's num_labels. `transformers` reads it back with from_pretrained."""
    transformers = transformers_module()
    config = copy.deepcopy(trunk.config)
    head = getattr(trunk, "classifier", None)
    if head is not None and head.out_features != config.num_labels:
        config.num_labels = head.out_features
    model = getattr(transformers, ARCHITECTURES[config.model_type])(config)
    conv1d = transformers.pytorch_utils.Conv1D
    transposed = {f"{name}.weight" for name, module in model.named_modules() if isinstance(module, conv1d)}
    state = {name: tensor.detach().cpu().t() if name in transposed else tensor.detach().cpu()
             for name, tensor in trunk.state_dict().items()}
    model.load_state_dict(state)
    model.save_pretrained(str(Path(directory).expanduser()))
