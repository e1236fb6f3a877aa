"""Likelihood-side pieces of the Laplace approximation, in the output space of the network.

Both likelihoods are written as a negative log likelihood with unit noise:
  classification: sum_n CE(f_n, y_n)                 (categorical over softmax(f_n))
  regression:     sum_n 0.5 * ||y_n - f_n||^2        (Gaussian N(f_n, 1); sigma and its
                                                      normalizer enter in bayes.laplace)
A language model's outputs are (batch, positions, outputs) logits with (batch, positions) class
targets: the classification likelihood of every position, summed, with the window (one row of
the batch) as the example; see sequence_outputs.
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


def sequence_outputs(f: torch.Tensor) -> bool:
    """Whether f holds per-position logits (batch, positions, outputs), as a language model's do."""
    return f.ndim == 3


def check_outputs(f: torch.Tensor, y: torch.Tensor, likelihood: str) -> None:
    """Outputs must be (batch, outputs), or (batch, positions, outputs) for classification (a
    language model); targets class indices shaped like f without its last axis, or a tensor shaped
    like f for regression."""
    if f.ndim != 2 and not (sequence_outputs(f) and likelihood == "classification"):
        raise UserError(f"the model must return (batch, outputs) logits, or (batch, positions, outputs) for "
                        f"classification, got shape {tuple(f.shape)}")
    expected = f.shape[:-1] if likelihood == "classification" else f.shape
    if y.shape != expected:
        raise UserError(
            f"{likelihood} targets must have shape {tuple(expected)} for outputs of shape "
            f"{tuple(f.shape)}, got {tuple(y.shape)}"
        )


def negative_log_likelihood(f: torch.Tensor, y: torch.Tensor, likelihood: str) -> torch.Tensor:
    """Summed unit-noise negative log likelihood of a batch (see the module docstring)."""
    if likelihood == "classification":
        return F.cross_entropy(f.reshape(-1, f.shape[-1]), y.reshape(-1), reduction="sum")
    return 0.5 * (f - y).square().sum()


def hessian_sqrt_columns(f: torch.Tensor, likelihood: str) -> torch.Tensor:
    """Columns of S_n with S_n S_n^T = d^2 loss / df_n^2, stacked as (columns, batch, outputs).

    Cross-entropy: H = diag(p) - p p^T and S = diag(sqrt p) - p sqrt(p)^T, because sum(p) = 1
    makes S S^T collapse to H; column c is sqrt(p_c) (e_c - p). Gaussian: H = I, S = I.
    """
    if sequence_outputs(f):
        raise UserError("the GGN (diag_ggn, kfac) of per-position outputs (a language model) would backpropagate "
                        "positions x classes columns per window: use --curvature=diag_ef")
    batch, outputs = f.shape
    if likelihood == "regression":
        eye = torch.eye(outputs, dtype=f.dtype, device=f.device)
        return eye.unsqueeze(1).expand(outputs, batch, outputs)
    p = torch.softmax(f.detach(), dim=-1)
    eye = torch.eye(outputs, dtype=f.dtype, device=f.device)
    # (c, n, k) = sqrt(p[n, c]) * (delta_ck - p[n, k])
    return p.sqrt().T.unsqueeze(-1) * (eye.unsqueeze(1) - p.unsqueeze(0))


def residual_columns(f: torch.Tensor, y: torch.Tensor, likelihood: str) -> torch.Tensor:
    """d loss_n / d f_n as one column, shaped (1, batch, outputs): the empirical Fisher's factor.
    Per-position outputs give (1, batch, positions, outputs): the gradient of the window's summed
    loss, so the empirical Fisher is over windows (bayes.curvature)."""
    f = f.detach()
    if likelihood == "classification":
        r = torch.softmax(f, dim=-1) - F.one_hot(y, f.shape[-1]).to(f.dtype)
    else:
        r = f - y
    return r.unsqueeze(0)
