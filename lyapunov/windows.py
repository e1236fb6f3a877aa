"""Windowed Lyapunov exponents of many recorded trajectories at once.

A trajectory of T recorded steps for P weights, ``(T, P)``, is cut along time into overlapping
windows of ``window`` steps; consecutive windows share ``round(overlap * window)`` steps and a
tail too short to fill a window is dropped. Each (window, weight) series gets its Rosenstein
exponent, giving an ``(n_windows, P)`` matrix: one exponent series per weight, ready to be tested
for Granger causality against a per-window series such as the misclassification risk.
"""

from typing import Any, NamedTuple

import torch
from torch import Tensor

from foundations.errors import UserError
from lyapunov.rosenstein import largest_lyapunov


class WindowedExponents(NamedTuple):
    exponents: Tensor  # (n_windows, P)
    degenerate: Tensor  # (n_windows, P) bool: see largest_lyapunov()


def window_stride(window: int, overlap: float) -> int:
    """Steps between the starts of consecutive windows."""
    if window < 1:
        raise UserError(f"window must be a positive number of steps, got {window}")
    if not 0.0 <= overlap < 1.0:
        raise UserError(f"overlap is a fraction of the window in [0, 1), got {overlap}")
    stride = window - round(overlap * window)
    if stride < 1:
        raise UserError(f"overlap={overlap} leaves no step between windows of {window}: lower it")
    return stride


def window_starts(n_steps: int, window: int, overlap: float) -> Tensor:
    """First step of every window, shape ``(n_windows,)``. ``starts + window - 1`` is each
    window's last step (where, e.g., the misclassification risk of that window is read)."""
    stride = window_stride(window, overlap)
    if n_steps < window:
        raise UserError(f"a trajectory of {n_steps} steps is shorter than one window of {window}")
    return torch.arange(0, n_steps - window + 1, stride)


def windowed_exponents(
    trajectory: Tensor,
    window: int,
    overlap: float = 0.1,
    *,
    device: torch.device | str | None = None,
    max_window_elements: int = 1 << 22,
    **rosenstein_options: Any,
) -> WindowedExponents:
    """Rosenstein exponent of every window of every column of ``trajectory`` ``(T, P)``.

    Windows are strided views of the trajectory (``Tensor.unfold``), never a copy of all of it:
    columns are taken ``max_window_elements // (n_windows * window)`` at a time, moved to
    ``device`` (default: the trajectory's), and handed to :func:`largest_lyapunov` with
    ``rosenstein_options`` (emb_dim, lag, min_tsep, trajectory_len, fit, decimals, tol,
    neighbours, ...).
    The result lives on ``device``.
    """
    if trajectory.dim() != 2:
        raise UserError(f"trajectory must be (steps, weights), got shape {tuple(trajectory.shape)}")
    n_steps, n_weights = trajectory.shape
    stride = window_stride(window, overlap)
    n_windows = len(window_starts(n_steps, window, overlap))
    device = trajectory.device if device is None else torch.device(device)

    exponents = torch.empty(n_windows, n_weights, dtype=trajectory.dtype, device=device)
    degenerate = torch.empty(n_windows, n_weights, dtype=torch.bool, device=device)
    columns = max(1, max_window_elements // (n_windows * window))
    for first in range(0, n_weights, columns):
        last = min(first + columns, n_weights)
        # Only the steps that some window covers, only these columns: (T', p) -> (n_windows, p, window).
        chunk = trajectory[: (n_windows - 1) * stride + window, first:last].to(device)
        result = largest_lyapunov(chunk.unfold(0, window, stride), **rosenstein_options)
        exponents[:, first:last] = result.exponent
        degenerate[:, first:last] = result.degenerate
    return WindowedExponents(exponents, degenerate)
