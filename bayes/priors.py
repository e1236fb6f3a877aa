"""Learnable Gaussian priors N(0, diag(delta)^-1) over a model's parameters, held as log delta.

Kinds (how many log precisions, and how they expand to one per parameter):
  scalar     one for the whole model
  layer      one per parameter tensor (laplace-torch's "layerwise": a Linear's weight and bias
             are two layers)
  parameter  one per parameter (laplace-torch's "diagonal")
  unit       per weight tensor with 2+ dims (a weight matrix or filter bank, out x in x ...):
             delta[o, i, ...] = delta_out[o] * delta_in[i], shared over kernel positions;
             every 1-dim tensor (bias, norm scale) gets one precision per entry, 0-dim tensors one.

Training with a prior adds its negative log density to the loss: penalty() is
0.5 * sum delta * theta^2 (delta held fixed), the learned per-parameter weight decay.
"""

import math

import torch
from torch import nn

from foundations.errors import UserError

PRIOR_KINDS = ("scalar", "layer", "parameter", "unit")


def _as_named(params: dict[str, torch.Tensor] | nn.Module) -> dict[str, torch.Tensor]:
    if isinstance(params, nn.Module):
        return dict(params.named_parameters())
    return params


class Prior(nn.Module):
    """Base: learnable log precisions for named parameter shapes; subclasses say how they expand."""

    kind = ""
    constant_per_tensor = False  # True when each parameter tensor has a single precision

    def __init__(self, shapes: dict[str, torch.Size], init_precision: float = 1.0) -> None:
        super().__init__()
        if not shapes:
            raise UserError("a prior needs at least one parameter to cover")
        if not init_precision > 0:
            raise UserError(f"prior precision must be positive, got {init_precision}")
        self.names = tuple(shapes)
        self.shapes = {name: torch.Size(shape) for name, shape in shapes.items()}
        self._init_log = math.log(init_precision)

    def _full(self, shape: tuple[int, ...] | torch.Size) -> nn.Parameter:
        return nn.Parameter(torch.full(tuple(shape), self._init_log))

    def log_precision(self) -> dict[str, torch.Tensor]:
        """log delta per parameter, each shaped like its parameter (possibly a broadcast view)."""
        raise NotImplementedError

    def precision(self) -> dict[str, torch.Tensor]:
        """delta per parameter, each shaped like its parameter."""
        return {name: lp.exp() for name, lp in self.log_precision().items()}

    def penalty(self, params: dict[str, torch.Tensor] | nn.Module, n_data: int = 1) -> torch.Tensor:
        """0.5 * sum delta * theta^2 / n_data, differentiable in theta only.

        Add it to a summed training loss with n_data=1, or to a mean-reduced batch loss with
        n_data = size of the training set (the MAP objective divided by N).
        """
        named = _as_named(params)
        total = None
        for name, lp in self.log_precision().items():
            term = (lp.detach().exp() * named[name].square()).sum()
            total = term if total is None else total + term
        return 0.5 * total / n_data


class ScalarPrior(Prior):
    kind = "scalar"
    constant_per_tensor = True

    def __init__(self, shapes: dict[str, torch.Size], init_precision: float = 1.0) -> None:
        super().__init__(shapes, init_precision)
        self.log_delta = self._full(())

    def log_precision(self) -> dict[str, torch.Tensor]:
        return {name: self.log_delta.expand(shape) for name, shape in self.shapes.items()}


class LayerPrior(Prior):
    kind = "layer"
    constant_per_tensor = True

    def __init__(self, shapes: dict[str, torch.Size], init_precision: float = 1.0) -> None:
        super().__init__(shapes, init_precision)
        self.log_delta = self._full((len(self.names),))

    def log_precision(self) -> dict[str, torch.Tensor]:
        return {
            name: self.log_delta[i].expand(self.shapes[name]) for i, name in enumerate(self.names)
        }


class ParameterPrior(Prior):
    kind = "parameter"

    def __init__(self, shapes: dict[str, torch.Size], init_precision: float = 1.0) -> None:
        super().__init__(shapes, init_precision)
        self.log_delta = nn.ParameterList([self._full(self.shapes[name]) for name in self.names])

    def log_precision(self) -> dict[str, torch.Tensor]:
        return dict(zip(self.names, self.log_delta))


class UnitPrior(Prior):
    kind = "unit"

    def __init__(self, shapes: dict[str, torch.Size], init_precision: float = 1.0) -> None:
        super().__init__(shapes, init_precision)
        # Split the initial log precision evenly so that delta_out * delta_in starts at init.
        half = self._init_log / 2
        self.log_out = nn.ParameterList()  # per tensor: output-unit (or entry) log precisions
        self.log_in = nn.ParameterDict()  # per weight tensor, keyed by its position in names
        for index, name in enumerate(self.names):
            shape = self.shapes[name]
            if len(shape) >= 2:
                self.log_out.append(nn.Parameter(torch.full((shape[0],), half)))
                self.log_in[str(index)] = nn.Parameter(torch.full((shape[1],), half))
            else:
                self.log_out.append(self._full(shape))

    def log_precision(self) -> dict[str, torch.Tensor]:
        result = {}
        for index, (name, log_out) in enumerate(zip(self.names, self.log_out)):
            shape = self.shapes[name]
            if len(shape) >= 2:
                trailing = (1,) * (len(shape) - 2)
                log_in = self.log_in[str(index)]
                outer = log_out.view(-1, 1, *trailing) + log_in.view(1, -1, *trailing)
                result[name] = outer.expand(shape)
            else:
                result[name] = log_out
        return result


_KINDS = {cls.kind: cls for cls in (ScalarPrior, LayerPrior, ParameterPrior, UnitPrior)}


def make_prior(
    kind: str, model: nn.Module | dict[str, torch.Tensor], init_precision: float = 1.0
) -> Prior:
    """A prior of the given kind over every trainable parameter of model (or a name->tensor dict)."""
    if kind not in _KINDS:
        raise UserError(f"unknown prior {kind!r}: use one of {', '.join(PRIOR_KINDS)}")
    named = _as_named(model)
    shapes = {n: p.shape for n, p in named.items() if not isinstance(p, nn.Parameter) or p.requires_grad}
    prior = _KINDS[kind](shapes, init_precision)
    some = next(iter(named.values()))
    return prior.to(device=some.device, dtype=some.dtype)
