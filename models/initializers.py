"""Initial weights: one named rule for conv/linear weights, one for batchnorm affine parameters,
one for conv/linear biases.

- The weight rule (`--model_init`) redraws every Conv2d and Linear weight. "Kaiming" here always
  means fan-in mode with the ReLU gain sqrt(2), so std = sqrt(2 / fan_in), where fan_in =
  in_channels * kernel_height * kernel_width (in_features for Linear). `pytorch` keeps each
  layer's own default draw (what the SpaM and LEGCNet authors' code trained from); `normal` draws
  N(0, init_std^2) for every layer (std 0.1 by default: what the "Missing the Mark" fork's
  `standard_normal` draws and what the LEGCNet authors drew for iris).
- The batchnorm rule (`--batchnorm_init`) sets every affine BatchNorm's scale and shift.
- The bias rule (`--bias_init`): `pytorch` keeps each layer's own default draw,
  U(-1/sqrt(fan_in), 1/sqrt(fan_in)), made when the model was built from the seeded generator
  (what OpenLTH does: its initializers touch weights only); `zero` sets them to 0; `normal` draws
  N(0, init_std^2) (the LEGCNet authors' iris biases).
Parameters of other modules (a model's own tensors, e.g. a recurrent layer's initial state) keep
what their module drew.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn as nn

from foundations.errors import UserError

BATCHNORM_TYPES = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm)


def _kaiming_std(weight: torch.Tensor) -> float:
    fan_in = weight[0].numel()
    return nn.init.calculate_gain("relu") / math.sqrt(fan_in)


def kaiming_normal(weight: torch.Tensor) -> None:
    """N(0, 2 / fan_in)."""
    nn.init.kaiming_normal_(weight, mode="fan_in", nonlinearity="relu")


def kaiming_uniform(weight: torch.Tensor) -> None:
    """U(-b, b) with b = sqrt(6 / fan_in), which has the Kaiming-normal variance 2 / fan_in."""
    nn.init.kaiming_uniform_(weight, mode="fan_in", nonlinearity="relu")


def glorot_uniform(weight: torch.Tensor) -> None:
    """U(-b, b) with b = sqrt(6 / (fan_in + fan_out)) (a conv's fans times its kernel size):
    TensorFlow's default for conv and dense kernels, which the RigL code keeps."""
    nn.init.xavier_uniform_(weight)


def orthogonal(weight: torch.Tensor) -> None:
    """Gain-1 (semi-)orthogonal rows/columns of the weight flattened to (out, fan_in)."""
    nn.init.orthogonal_(weight)


def standard_normal(weight: torch.Tensor) -> None:
    """N(0, 1) for every layer regardless of its width: the unscaled "standard normal" control,
    deliberately without any fan-in correction."""
    nn.init.normal_(weight, mean=0.0, std=1.0)


def keep_pytorch_default(weight: torch.Tensor) -> None:
    """Leave the layer's own draw, U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for Linear and Conv2d."""


def binary(weight: torch.Tensor) -> None:
    """The sign of a Kaiming-normal draw times the Kaiming std: each weight is +-sqrt(2 / fan_in).

    The layer keeps Kaiming's variance exactly. (OpenLTH scales by the draw's sample std instead,
    which differs by O(1/sqrt(numel)) and is undefined for a one-element layer.)
    """
    nn.init.kaiming_normal_(weight, mode="fan_in", nonlinearity="relu")
    with torch.no_grad():
        weight.sign_().mul_(_kaiming_std(weight))


def batchnorm_uniform(norm: nn.Module) -> None:
    """Scale ~ U[0, 1), shift 0 (OpenLTH's default for the lottery-ticket experiments)."""
    nn.init.uniform_(norm.weight, 0.0, 1.0)
    nn.init.zeros_(norm.bias)


def batchnorm_fixed(norm: nn.Module) -> None:
    """Scale 1, shift 0 (PyTorch's default)."""
    nn.init.ones_(norm.weight)
    nn.init.zeros_(norm.bias)


WEIGHT_INITIALIZERS: dict[str, Callable[[torch.Tensor], None]] = {
    "kaiming_normal": kaiming_normal,
    "kaiming_uniform": kaiming_uniform,
    "glorot_uniform": glorot_uniform,
    "orthogonal": orthogonal,
    "standard_normal": standard_normal,
    "binary": binary,
    "pytorch": keep_pytorch_default,
}

SCALED_INITIALIZERS = ("normal",)  # drawn with --init_std: N(0, init_std^2)
DEFAULT_INIT_STD = 0.1

BATCHNORM_INITIALIZERS: dict[str, Callable[[nn.Module], None]] = {
    "uniform": batchnorm_uniform,
    "fixed": batchnorm_fixed,
}


BIAS_INITIALIZERS = ("pytorch", "zero", "normal")


def check_names(model_init: str, batchnorm_init: str, bias_init: str = "pytorch") -> None:
    """UserError naming the valid choices if an initializer is unknown."""
    if model_init not in WEIGHT_INITIALIZERS and model_init not in SCALED_INITIALIZERS:
        names = [*WEIGHT_INITIALIZERS, *SCALED_INITIALIZERS]
        raise UserError(f"unknown --model_init={model_init!r}: use one of {', '.join(names)}")
    if batchnorm_init not in BATCHNORM_INITIALIZERS:
        raise UserError(
            f"unknown --batchnorm_init={batchnorm_init!r}: use one of {', '.join(BATCHNORM_INITIALIZERS)}")
    if bias_init not in BIAS_INITIALIZERS:
        raise UserError(f"unknown --bias_init={bias_init!r}: use one of {', '.join(BIAS_INITIALIZERS)}")


def _normal(std: float) -> Callable[[torch.Tensor], None]:
    def draw(tensor: torch.Tensor) -> None:
        nn.init.normal_(tensor, mean=0.0, std=std)
    return draw


def initialize(model: nn.Module, model_init: str, batchnorm_init: str, bias_init: str = "pytorch",
               init_std: float = DEFAULT_INIT_STD) -> None:
    """Apply the named rules to every conv/linear layer and every batchnorm, in module order
    (a layer's weight, then its bias, so a `normal` weight and bias come from one stream)."""
    check_names(model_init, batchnorm_init, bias_init)
    weight_rule = _normal(init_std) if model_init == "normal" else WEIGHT_INITIALIZERS[model_init]
    norm_rule = BATCHNORM_INITIALIZERS[batchnorm_init]
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            weight_rule(module.weight)
            if module.bias is not None and bias_init == "zero":
                nn.init.zeros_(module.bias)
            elif module.bias is not None and bias_init == "normal":
                _normal(init_std)(module.bias)
        elif isinstance(module, BATCHNORM_TYPES) and module.affine:
            norm_rule(module)
