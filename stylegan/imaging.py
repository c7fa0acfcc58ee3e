"""Image tensors to files: [-1, 1] float batches to uint8, grids, PNG writing (atomic)."""

import os
from pathlib import Path

import torch
from PIL import Image
from torch import Tensor
from torchvision.utils import make_grid

from stylegan.atomic import atomic_path


def to_uint8(images: Tensor) -> Tensor:
    """Float images in [-1, 1] -> uint8 in [0, 255] (round to nearest; inverse of ``x/127.5 - 1``).

    uint8 input is returned unchanged.
    """
    if images.dtype == torch.uint8:
        return images
    return (images.detach().float() * 127.5 + 127.5).round_().clamp_(0, 255).to(torch.uint8)


def grid_image(images: Tensor, *, nrow: int, padding: int = 2) -> Image.Image:
    """A PIL image of ``images`` ([-1, 1] floats or uint8) laid out ``nrow`` per row."""
    if images.dtype != torch.uint8:
        images = to_uint8(images)
    grid = make_grid(images.cpu(), nrow=nrow, padding=padding, pad_value=0)  # [C, H, W]
    return Image.fromarray(grid.permute(1, 2, 0).numpy())


def save_png(image: Image.Image, path: str | os.PathLike) -> Path:
    """Write a PNG atomically so a reader never sees half an image."""
    with atomic_path(path) as tmp:
        image.save(tmp, format="PNG")
    return Path(path)


def save_grid(images: Tensor, path: str | os.PathLike, *, nrow: int) -> Path:
    """Save a batch as one grid PNG."""
    return save_png(grid_image(images, nrow=nrow), path)
