"""Likelihood-side pieces of the Laplace approximation, in the output space of the network.

Both likelihoods are written as a negative log likelihood with unit noise:
  classification: sum_n CE(f_n, y_n)                 (categorical over softmax(f_n))
  regression:     sum_n 0.5 * ||y_n - f_n||^2        (Gaussian N(f_n, 1); sigma and its
                                                      normalizer enter in bayes.laplace)
The curvature of the network is then J^T H J with H the Hessian of this loss in f. We never form
H: we backpropagate the columns of a square root S (H_n = S_n S_n^T), which is what makes the
diagonal GGN exact per example.
"""

import torch
import torch.nn.functional as F

from foundations.errors import UserError

LIKELIHOODS = ("classification", "regression")


def check_likelihood(likelihood: str) -> None:
    if likelihood not in LIKELIHOODS:
        raise UserError(f"unknown likelihood {likelihood!r}: use one of {', '.join(LIKELIHOODS)}")


def check_outputs(f: torch.Tensor, y: torch.Tensor, likelihood: str) -> None:
    """Outputs must be (batch, outputs); targets class indices or a tensor shaped like f."""
    if f.ndim != 2:
        raise UserError(f"the model must return (batch, outputs) logits, got shape {tuple(f.shape)}")
    expected = f.shape[:1] if likelihood == "classification" else f.shape
    if y.shape != expected:
        raise UserError(
            f"{likelihood} targets must have shape {tuple(expected)} for outputs of shape "
            f"{tuple(f.shape)}, got {tuple(y.shape)}"
        )


def negative_log_likelihood(f: torch.Tensor, y: torch.Tensor, likelihood: str) -> torch.Tensor:
    """Summed unit-noise negative log likelihood of a batch (see the module docstring)."""
    if likelihood == "classification":
        return F.cross_entropy(f, y, reduction="sum")
    return 0.5 * (f - y).square().sum()


def hessian_sqrt_columns(f: torch.Tensor, likelihood: str) -> torch.Tensor:
    """Columns of S_n with S_n S_n^T = d^2 loss / df_n^2, stacked as (columns, batch, outputs).

    Cross-entropy: H = diag(p) - p p^T and S = diag(sqrt p) - p sqrt(p)^T, because sum(p) = 1
    makes S S^T collapse to H; column c is sqrt(p_c) (e_c - p). Gaussian: H = I, S = I.
    """
    batch, outputs = f.shape
    if likelihood == "regression":
        eye = torch.eye(outputs, dtype=f.dtype, device=f.device)
        return eye.unsqueeze(1).expand(outputs, batch, outputs)
    p = torch.softmax(f.detach(), dim=-1)
    eye = torch.eye(outputs, dtype=f.dtype, device=f.device)
    # (c, n, k) = sqrt(p[n, c]) * (delta_ck - p[n, k])
    return p.sqrt().T.unsqueeze(-1) * (eye.unsqueeze(1) - p.unsqueeze(0))


def residual_columns(f: torch.Tensor, y: torch.Tensor, likelihood: str) -> torch.Tensor:
    """d loss_n / d f_n as one column, shaped (1, batch, outputs): the empirical Fisher's factor."""
    f = f.detach()
    if likelihood == "classification":
        r = torch.softmax(f, dim=-1) - F.one_hot(y, f.shape[-1]).to(f.dtype)
    else:
        r = f - y
    return r.unsqueeze(0)
