"""Model names -> models: finds every family in models/ and builds seeded, initialized models.

A family is an entry of the registry convention (foundations/registry.py): a module in models/
that assigns, at its top level,

    NAME = "cifar_vgg"                       the family's name (here always its module's name)
    SUMMARY = "VGG-11/13/16/19 for CIFAR..."  one line for listings
    FAMILY = ModelFamily(...)                how its model names look, are built and trained

Nothing here lists them, so adding a model is adding one file. Helper modules (base, recipes,
initializers, this one) declare no NAME. A model name is matched against every family's pattern
(`family.parse(model_name)`), in NAME order.
"""

from __future__ import annotations

from typing import Any, Optional, Protocol

import torch

from foundations.errors import UserError
from foundations.registry import Registry
from models import initializers
from models.base import InputShape, Model, ModelFamily

MODELS = Registry("models", kind="model family", attribute="FAMILY", plural="model families",
                  expected=lambda family: isinstance(family, ModelFamily), expected_as="a ModelFamily")


class ModelHparamsLike(Protocol):
    model_name: str
    model_init: str
    batchnorm_init: str
    batchnorm_frozen: bool
    output_frozen: bool


def families() -> tuple[ModelFamily, ...]:
    """Every registered family, in name order (imports every family's module)."""
    return tuple(MODELS.get(name) for name in MODELS.names())


def name_patterns() -> list[str]:
    """How valid model names look, one line per family (for help text and errors)."""
    return [family.pattern for family in families()]


def _lookup(model_name: str) -> tuple[ModelFamily, Any]:
    for family in families():
        spec = family.parse(model_name)
        if spec is not None:
            return family, spec
    raise UserError(f"unknown --model_name={model_name!r}: use one of " + "; ".join(name_patterns()))


def exists(model_name: str) -> bool:
    try:
        _lookup(model_name)
    except UserError:
        return False
    return True


def default_hparams(model_name: str, dataset_name: Optional[str] = None) -> dict:
    """The family's published recipe as {'dataset': {...}, 'model': {...}, 'training': {...},
    'pruning': {...}} field overrides, with model_name set to `model_name`.

    A name that does not say its dataset (a bare `lenet_300_100`: its spec's dataset_name is None)
    has no recipe and its family refuses it (what `--default_hparams` does), unless `dataset_name`
    says it: the dataset a trunk was trained on, for reading a trained model's defaults."""
    family, spec = _lookup(model_name)
    if dataset_name is not None and getattr(spec, "dataset_name", "") is None:
        spec = spec._replace(dataset_name=dataset_name)
    return family.default_hparams(model_name, spec)


def _check_shape(input_shape: InputShape, num_classes: int) -> InputShape:
    shape = tuple(int(size) for size in input_shape)
    if not shape or min(shape) < 1:
        raise ValueError(f"input_shape must be one example's shape, e.g. (channels, height, width) or "
                         f"(features,), all positive; got {input_shape}")
    if num_classes < 1:
        raise ValueError(f"num_classes (the number of outputs) must be positive, got {num_classes}")
    return shape  # type: ignore[return-value]


def _freeze(model: Model, batchnorm: bool, output: bool) -> None:
    if batchnorm:
        for module in model.modules():
            if isinstance(module, initializers.BATCHNORM_TYPES):
                for parameter in module.parameters(recurse=False):
                    parameter.requires_grad_(False)
    if output:
        for parameter in model.get_submodule(model.output_module).parameters():
            parameter.requires_grad_(False)


def _with_pretrained(family: ModelFamily, spec: Any, model_hparams: Any) -> tuple[ModelFamily, Any]:
    """A family that starts from a checkpoint has a `pretrained` field in its spec (filled from
    --pretrained here); every other family refuses --pretrained."""
    pretrained = getattr(model_hparams, "pretrained", None)
    if "pretrained" in getattr(spec, "_fields", ()):
        return family, spec._replace(pretrained=pretrained)
    if pretrained is not None:
        raise UserError(f"--pretrained loads a Hugging Face checkpoint into model names like <dataset>_hf; "
                        f"--model_name={model_hparams.model_name} is drawn from scratch: drop --pretrained")
    return family, spec


def get(model_hparams: ModelHparamsLike, input_shape: InputShape, num_classes: int, seed: int) -> Model:
    """Build the named model on the CPU with weights drawn from `seed` alone.

    The caller's RNG state is untouched: the draw happens on a forked CPU generator, so the same
    seed gives bitwise the same weights wherever and whenever it is called.
    """
    family, spec = _with_pretrained(*_lookup(model_hparams.model_name), model_hparams)
    bias_init = getattr(model_hparams, "bias_init", "pytorch")
    initializers.check_names(model_hparams.model_init, model_hparams.batchnorm_init, bias_init)
    shape = _check_shape(input_shape, num_classes)
    with torch.random.fork_rng(devices=[]):
        torch.default_generator.manual_seed(seed)
        model = family.build(spec, shape, num_classes)
        initializers.initialize(model, model_hparams.model_init, model_hparams.batchnorm_init, bias_init,
                                getattr(model_hparams, "init_std", initializers.DEFAULT_INIT_STD))
    _freeze(model, model_hparams.batchnorm_frozen, model_hparams.output_frozen)
    return model
