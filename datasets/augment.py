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
    Every crop position of the padded batch is a strided view (no copy); indexing picks one window
    per image, which copies whole rows at a time.
    """
    batch, channels, height, width = images.shape
    padded = F.pad(images, (padding, padding, padding, padding)).contiguous()
    b_stride, c_stride, h_stride, w_stride = padded.stride()
    positions = 2 * padding + 1
    windows = padded.as_strided(
        (batch, positions, positions, channels, height, width),
        (b_stride, h_stride, w_stride, c_stride, h_stride, w_stride),
    )
    cropped = windows[torch.arange(batch, device=images.device), params[:, 0], params[:, 1]]
    return torch.where(params[:, 2].bool().view(batch, 1, 1, 1), cropped.flip(-1), cropped)
