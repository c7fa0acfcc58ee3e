"""Image tensors to files: [-1, 1] float batches to uint8, grids, PNG writing (atomic)."""

import os
import tempfile
from pathlib import Path

import torch
from PIL import Image
from torch import Tensor
from torchvision.utils import make_grid


def to_uint8(images: Tensor) -> Tensor:
    """[N, C, H, W] float in [-1, 1] -> uint8 [N, C, H, W] (rounded, clamped)."""
    return (images.detach().float() * 127.5 + 128).clamp(0, 255).to(torch.uint8)


def grid_image(images: Tensor, *, nrow: int, padding: int = 2) -> Image.Image:
    """A PIL image of ``images`` ([-1, 1] floats or uint8) laid out ``nrow`` per row."""
    if images.dtype != torch.uint8:
        images = to_uint8(images)
    grid = make_grid(images.cpu(), nrow=nrow, padding=padding, pad_value=0)  # [C, H, W]
    return Image.fromarray(grid.permute(1, 2, 0).numpy())


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def save_png(image: Image.Image, path: str | os.PathLike) -> Path:
    """Write a PNG atomically (temp file + rename) so a reader never sees half an image."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".png", dir=path.parent)
    os.close(fd)
    try:
        image.save(tmp, format="PNG")
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual mode
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def save_grid(images: Tensor, path: str | os.PathLike, *, nrow: int) -> Path:
    """Save a batch as one grid PNG."""
    return save_png(grid_image(images, nrow=nrow), path)
