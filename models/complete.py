"""The complete layer: one weight-tied recurrent layer in which every unit may feed every other.

Names: `<dataset>_complete_<H>[_t<T>][_bias]`, with dataset `xor` or `sine` (the recipe), H >= 1
hidden units, T >= 1 steps (default 3) and `_bias` for a learned bias (default none), e.g.
`xor_complete_5`, `sine_complete_8_t4`, `xor_complete_5_t3_bias`. The I inputs come from the
dataset's (I,) example shape and the O outputs from its output count.

The H + O non-input units carry a state h; with the inputs x it forms [h, x], ordered
[outputs, hidden, inputs]. One weight W of shape (H+O, H+O+I) (rows: the units, columns: that
order) maps it to the next state, the same W at every step and x fed in again at every step:

    h_0 = V,   h_t = sigmoid([h_{t-1}, x] W^T (+ b))   for t = 1..T,   output = h_T[:, :O]

where V (1, H+O) is a learned initial state broadcast over the batch. W, V and b start N(0, 1),
drawn here in the constructor (the registry seeds the RNG first; its --model_init rules act on
Linear and Conv2d layers only, so they leave this layer alone). The whole of W is prunable,
input columns included; V and b are not.
"""

from __future__ import annotations

import re
from typing import NamedTuple, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from foundations.errors import UserError
from models.base import InputShape, Model, ModelFamily

NAME = "complete"
SUMMARY = "one weight-tied recurrent layer in which every unit may feed every other"

# dataset prefix -> (batch size, training steps); both train with Adam at lr 0.01
_RECIPES = {"xor": (4, "1000ep"), "sine": (10, "40ep")}
_MODEL_NAME = re.compile(r"(" + "|".join(_RECIPES) + r")_complete_([1-9]\d*)(?:_t([1-9]\d*))?(_bias)?")
DEFAULT_STEPS = 3


class CompleteLayer(Model):
    """Parameters `weight` (H+O, H+O+I), `initial_state` (1, H+O) and optionally `bias` (H+O).

    The outputs are sigmoid states in (0, 1), not logits: train them with a loss on values
    (mean squared error, as the paper does).
    """

    def __init__(self, num_inputs: int, num_hidden: int, num_outputs: int, steps: int = DEFAULT_STEPS,
                 bias: bool = False) -> None:
        super().__init__()
        if min(num_inputs, num_hidden, num_outputs, steps) < 1:
            raise ValueError(f"a complete layer needs at least one input, hidden unit, output and step; got "
                             f"I={num_inputs}, H={num_hidden}, O={num_outputs}, T={steps}")
        self.num_inputs, self.num_hidden, self.num_outputs, self.steps = num_inputs, num_hidden, num_outputs, steps
        units = num_hidden + num_outputs
        self.weight = nn.Parameter(torch.randn(units, units + num_inputs))
        self.initial_state = nn.Parameter(torch.randn(1, units))
        self.register_parameter("bias", nn.Parameter(torch.randn(units)) if bias else None)

    def extra_repr(self) -> str:
        return (f"inputs={self.num_inputs}, hidden={self.num_hidden}, outputs={self.num_outputs}, "
                f"steps={self.steps}, bias={self.bias is not None}")

    @property
    def num_units(self) -> int:
        """H + O: the units with a state, the side of the square block."""
        return self.num_hidden + self.num_outputs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.flatten(1)
        state = self.initial_state.expand(x.shape[0], -1)
        for _ in range(self.steps):
            state = torch.sigmoid(F.linear(torch.cat([state, x], dim=1), self.weight, self.bias))
        return state[:, :self.num_outputs]

    def forward_stacked(self, params: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        """The forward of N layers at once (training/stacked/): `params` name -> (N, ...), `x`
        (N, B, ...) -> (N, B, O), each step one batched matrix product."""
        x = x.flatten(2)
        state = params["initial_state"].expand(-1, x.shape[1], -1)
        weight_t, bias = params["weight"].transpose(1, 2), params.get("bias")
        for _ in range(self.steps):
            inputs = torch.cat([state, x], dim=2)
            state = torch.sigmoid(torch.bmm(inputs, weight_t) if bias is None
                                  else torch.baddbmm(bias.unsqueeze(1), inputs, weight_t))
        return state[..., :self.num_outputs]

    def square_block(self) -> torch.Tensor:
        """W[:, :H+O], the unit-to-unit weights (outputs first), detached: a view, not a copy."""
        return self.weight.detach()[:, :self.num_units]

    @property
    def prunable_layer_names(self) -> list[str]:
        return ["weight"]

    @property
    def output_layer_names(self) -> list[str]:
        """Every parameter: the outputs are rows of the shared weight, not a layer of their own."""
        return [name for name, _ in self.named_parameters()]

    @property
    def output_module(self) -> str:  # type: ignore[override]
        raise UserError("a complete layer has no separate output layer (its outputs are rows of the one "
                        "shared weight): drop --output_frozen")


class CompleteSpec(NamedTuple):
    dataset_name: str
    hidden: int
    steps: int
    bias: bool


def parse(name: str) -> Optional[CompleteSpec]:
    match = _MODEL_NAME.fullmatch(name)
    if match is None:
        return None
    steps = int(match.group(3)) if match.group(3) else DEFAULT_STEPS
    return CompleteSpec(match.group(1), int(match.group(2)), steps, bool(match.group(4)))


def build(spec: CompleteSpec, input_shape: InputShape, num_outputs: int) -> CompleteLayer:
    if len(input_shape) != 1:
        raise UserError(f"a complete layer reads tabular examples of shape (features,), got {tuple(input_shape)}: "
                        "use a tabular dataset such as xor or sine")
    return CompleteLayer(input_shape[0], spec.hidden, num_outputs, spec.steps, spec.bias)


def default_hparams(name: str, spec: CompleteSpec) -> dict:
    """The paper's recipe: Adam at lr 0.01; xor batch 4 for 1000 epochs, sine batch 10 for 40.
    model_init reads standard_normal because that is what the layer does, whatever it says."""
    batch_size, steps = _RECIPES[spec.dataset_name]
    return {
        "dataset": {"dataset_name": spec.dataset_name, "batch_size": batch_size},
        "model": {"model_name": name, "model_init": "standard_normal", "batchnorm_init": "uniform"},
        "training": {"optimizer_name": "adam", "lr": 0.01, "training_steps": steps},
        "pruning": {},
    }


FAMILY = ModelFamily(
    pattern="xor_complete_H[_tT][_bias] | sine_complete_H[_tT][_bias] (H hidden units, T steps, default 3)",
    parse=parse, build=build, default_hparams=default_hparams)
