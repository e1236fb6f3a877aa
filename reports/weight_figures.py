"""Figures of one saved model: per-layer histograms of the kept weights, weight matrices and conv
filters as heatmaps, and the mask as an image.

A linear weight (out, in) is drawn as it is; a conv weight (out, in, kh, kw) as a grid of its
kh×kw filters, one row per output channel and one column per input channel, with a gap between
filters. Large layers show their first MAX_UNITS rows and columns (the title says so).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from reports.figures import plt, save

MAX_UNITS = 1024      # rows/columns of a linear weight shown
MAX_CHANNELS = 48     # output/input channels of a conv weight shown


def image_of(tensor: torch.Tensor) -> tuple[np.ndarray, str]:
    """A 2-D array to draw for a weight or mask tensor (NaN between conv filters), and a note on
    what was cut."""
    data = tensor.detach().float().cpu()
    if data.ndim == 2:
        shown = data[:MAX_UNITS, :MAX_UNITS].numpy()
        cut = shown.shape != tuple(data.shape)
        return shown, f" (first {shown.shape[0]}×{shown.shape[1]})" if cut else ""
    data = data.reshape(data.shape[0], data.shape[1], data.shape[2], -1)  # conv1d/3d: flatten the rest
    out, inp, kh, kw = data.shape
    o, i = min(out, MAX_CHANNELS), min(inp, MAX_CHANNELS)
    grid = np.full((o * (kh + 1) - 1, i * (kw + 1) - 1), np.nan)
    for r in range(o):
        for c in range(i):
            grid[r * (kh + 1):r * (kh + 1) + kh, c * (kw + 1):c * (kw + 1) + kw] = data[r, c].numpy()
    cut = (o, i) != (out, inp)
    return grid, f" (first {o} out × {i} in channels)" if cut else ""


def _panels(count: int, width: float, height: float):
    columns = min(4, count)
    rows = math.ceil(count / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(width * columns, height * rows), squeeze=False)
    for ax in axes.flat[count:]:
        ax.axis("off")
    return fig, list(axes.flat[:count])


def histograms(weights: dict[str, torch.Tensor], mask: Optional[dict[str, torch.Tensor]], stem: Path,
               title: str) -> list[Path]:
    """One histogram per layer of the weights that the mask keeps (all of them without a mask)."""
    fig, axes = _panels(len(weights), 3.6, 2.6)
    for ax, (name, weight) in zip(axes, weights.items()):
        values = weight.detach().float().cpu().reshape(-1)
        kept = values[mask[name].reshape(-1)] if mask is not None and name in mask else values
        ax.hist(kept.numpy(), bins=60, color="#3b75af")
        ax.set_title(f"{name}\n{kept.numel()} of {values.numel()} kept", fontsize=8)
        ax.tick_params(labelsize=7)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return save(fig, stem)


def heatmaps(tensors: dict[str, torch.Tensor], stem: Path, title: str, *, binary: bool = False) -> list[Path]:
    """Each layer as an image: weights on a diverging scale around 0, or a mask (kept = dark)."""
    fig, axes = _panels(len(tensors), 4.0, 3.2)
    for ax, (name, tensor) in zip(axes, tensors.items()):
        image, cut = image_of(tensor)
        if binary:
            shown = ax.imshow(image, cmap="Greys", vmin=0, vmax=1, aspect="auto", interpolation="nearest")
        else:
            limit = float(np.nanmax(np.abs(image))) if np.isfinite(image).any() else 1.0
            cmap = plt.get_cmap("RdBu_r").with_extremes(bad="#dddddd")  # the gaps between conv filters
            shown = ax.imshow(image, cmap=cmap, vmin=-limit or -1, vmax=limit or 1, aspect="auto",
                              interpolation="nearest")
            fig.colorbar(shown, ax=ax, fraction=0.046, pad=0.02).ax.tick_params(labelsize=6)
        ax.set_title(f"{name} {tuple(tensor.shape)}{cut}", fontsize=8)
        ax.tick_params(labelsize=6)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return save(fig, stem)
