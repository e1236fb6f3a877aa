"""Per-example squared gradients for parameters outside Linear/Conv2d layers, via torch.func.

Norm-layer scales and shifts, grouped convolutions, embeddings and the like have no closed form
in bayes.layer_capture; they are few and small, so we afford the generic route: one vmapped
vector-Jacobian product per example and per backpropagated column.
"""

import torch
from torch import nn
from torch.func import functional_call, vjp, vmap


def squared_column_gradients(
    model: nn.Module,
    fixed: dict[str, torch.Tensor],
    free: dict[str, torch.Tensor],
    x: torch.Tensor,
    columns: torch.Tensor,
) -> dict[str, torch.Tensor]:
    """sum_n sum_c (d (s_nc . f_n) / d theta)^2 for each parameter in free.

    columns is (columns, batch, outputs): the s_nc that bayes.likelihood backpropagates. The
    model must treat examples independently (eval mode), which is what makes this per example.
    """

    def output_of_one(params: dict[str, torch.Tensor], x_n: torch.Tensor) -> torch.Tensor:
        return functional_call(model, {**fixed, **params}, (x_n.unsqueeze(0),)).squeeze(0)

    def squares_of_one(x_n: torch.Tensor, columns_n: torch.Tensor) -> dict[str, torch.Tensor]:
        _, pullback = vjp(lambda params: output_of_one(params, x_n), free)
        (grads,) = vmap(pullback)(columns_n)
        return {name: g.square().sum(0) for name, g in grads.items()}

    per_example = vmap(squares_of_one)(x, columns.transpose(0, 1))
    return {name: s.sum(0) for name, s in per_example.items()}
