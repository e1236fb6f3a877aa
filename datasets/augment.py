"""Batched pad-crop-flip on the device: the standard CIFAR training augmentation without a per-image loop.

The random parameters of a whole epoch are drawn at once on CPU from a seeded generator (so they are
the same on every device) and moved to the device in one copy; each batch then slices its rows.
"""

import torch
import torch.nn.functional as F

from datasets.seeds import generator


def draw_pad_crop_flip(num_examples: int, padding: int, *seed_parts: int | str) -> torch.Tensor:
    """Per-position parameters for one epoch, shape (num_examples, 3): row offset, column offset, flip (0/1).

    Offsets are uniform in [0, 2 * padding]: the top-left corner of the crop inside the padded image.
    """
    rng = generator(*seed_parts)
    offsets = torch.randint(2 * padding + 1, (num_examples, 2), generator=rng)
    flips = torch.randint(2, (num_examples, 1), generator=rng)
    return torch.cat([offsets, flips], dim=1)


def pad_crop_flip(images: torch.Tensor, params: torch.Tensor, padding: int) -> torch.Tensor:
    """Zero-pad each image by `padding`, crop back to its size at (row, col) offsets, flip where asked.

    images: (B, C, H, W) of any dtype; params: (B, 3) from `draw_pad_crop_flip`, on the same device.
    """
    batch, _, height, width = images.shape
    padded = F.pad(images, (padding, padding, padding, padding))
    rows = params[:, 0:1] + torch.arange(height, device=images.device)
    cols = params[:, 1:2] + torch.arange(width, device=images.device)
    cols = torch.where(params[:, 2:3].bool(), cols.flip(1), cols)
    example = torch.arange(batch, device=images.device)[:, None, None]
    cropped = padded[example, :, rows[:, :, None], cols[:, None, :]]  # (B, H, W, C)
    return cropped.permute(0, 3, 1, 2).contiguous()
