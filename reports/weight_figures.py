"""Figures of one saved model: per-layer histograms of the kept weights, weight matrices and conv
filters as heatmaps, the mask as an image, and a first layer over images in input space.

A linear weight (out, in) is drawn as it is; a conv weight (out, in, kh, kw) as a grid of its
kh×kw filters, one row per output channel and one column per input channel, with a gap between
filters, each filter square. Large layers show their first MAX_UNITS rows and columns (the title
says so); a matrix larger than the panel is antialiased when drawn, not sampled (no moiré). A
first layer that reads an image (in = C·H·W) is also drawn in input space: its first units as
H×W pictures, and its mask as the kept fraction of each pixel's weights.
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
        conv = tensor.ndim > 2
        style = dict(aspect="equal" if conv else "auto", interpolation="antialiased", interpolation_stage="rgba")
        if binary:
            shown = ax.imshow(image, cmap="Greys", vmin=0, vmax=1, **style)
        else:
            limit = float(np.nanmax(np.abs(image))) if np.isfinite(image).any() else 1.0
            cmap = plt.get_cmap("RdBu_r").with_extremes(bad="#dddddd")  # the gaps between conv filters
            shown = ax.imshow(image, cmap=cmap, vmin=-limit or -1, vmax=limit or 1, **style)
            fig.colorbar(shown, ax=ax, fraction=0.046, pad=0.02).ax.tick_params(labelsize=6)
        ax.set_title(f"{name} {tuple(tensor.shape)}{cut}", fontsize=8)
        ax.set_xlabel("input channel (one filter each)" if conv else "input unit", fontsize=7)
        ax.set_ylabel("output channel" if conv else "output unit", fontsize=7)
        if conv:  # ticks at the filters' centres, numbered by channel
            kh, kw = tensor.shape[2], int(np.prod(tensor.shape[3:]))
            ax.set_xticks([c * (kw + 1) + (kw - 1) / 2 for c in range(min(tensor.shape[1], MAX_CHANNELS))][::4])
            ax.set_xticklabels([str(c) for c in range(min(tensor.shape[1], MAX_CHANNELS))][::4])
            ax.set_yticks([r * (kh + 1) + (kh - 1) / 2 for r in range(min(tensor.shape[0], MAX_CHANNELS))][::4])
            ax.set_yticklabels([str(r) for r in range(min(tensor.shape[0], MAX_CHANNELS))][::4])
        ax.tick_params(labelsize=6)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return save(fig, stem)


MAX_PICTURES = 64  # first-layer units drawn as pictures


def reads_images(weight: torch.Tensor, input_shape: Optional[tuple[int, ...]]) -> bool:
    """Whether `weight` is a linear layer over a flattened (C, H, W) image."""
    return (input_shape is not None and len(input_shape) == 3 and weight.ndim == 2
            and weight.shape[1] == int(np.prod(input_shape)))


def unit_pictures(weight: torch.Tensor, input_shape: tuple[int, ...]) -> np.ndarray:
    """The first MAX_PICTURES units of a layer over (C, H, W) images as H×W pictures (the mean over
    colour channels) in a square grid, unit k at row k // side and column k % side, NaN between."""
    channels, height, width = input_shape
    units = weight.detach().float().cpu().reshape(weight.shape[0], channels, height, width).mean(1)
    shown = units[:MAX_PICTURES]
    side = math.ceil(math.sqrt(shown.shape[0]))
    grid = np.full((side * (height + 1) - 1, side * (width + 1) - 1), np.nan)
    for k, picture in enumerate(shown.numpy()):
        r, c = divmod(k, side)
        grid[r * (height + 1):r * (height + 1) + height, c * (width + 1):c * (width + 1) + width] = picture
    return grid


def kept_per_pixel(mask: torch.Tensor, input_shape: tuple[int, ...]) -> np.ndarray:
    """(H, W): the fraction of the weights reading each pixel (over units and channels) that are kept."""
    return mask.detach().float().cpu().reshape(mask.shape[0], *input_shape).mean((0, 1)).numpy()


def input_space(name: str, weight: torch.Tensor, mask: Optional[torch.Tensor], input_shape: tuple[int, ...],
                stem: Path, title: str) -> list[Path]:
    """A first layer over images in input space: its first units' weights as pictures, and with a
    mask the kept fraction of every pixel's weights."""
    _, height, width = input_shape
    grid = unit_pictures(weight, input_shape)
    shown = min(weight.shape[0], MAX_PICTURES)
    fig, axes = plt.subplots(1, 2 if mask is not None else 1, figsize=(9 if mask is not None else 5, 4.4),
                             squeeze=False, layout="constrained")
    ax = axes[0, 0]
    limit = float(np.nanmax(np.abs(grid))) or 1.0
    image = ax.imshow(grid, cmap=plt.get_cmap("RdBu_r").with_extremes(bad="#dddddd"), vmin=-limit, vmax=limit,
                      interpolation="nearest")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.02).ax.tick_params(labelsize=6)
    ax.set_title(f"{name}: units 0-{shown - 1} of {weight.shape[0]}, each {height}×{width}", fontsize=8)
    ax.axis("off")
    if mask is not None:
        ax = axes[0, 1]
        image = ax.imshow(kept_per_pixel(mask, input_shape), cmap="Greys", vmin=0, vmax=1, interpolation="nearest")
        fig.colorbar(image, ax=ax, fraction=0.046, pad=0.02).ax.tick_params(labelsize=6)
        ax.set_title(f"{name}: kept fraction of each pixel's weights", fontsize=8)
        ax.set_xlabel("pixel column", fontsize=7)
        ax.set_ylabel("pixel row", fontsize=7)
        ax.tick_params(labelsize=6)
    fig.suptitle(title, fontsize=9)
    return save(fig, stem)
