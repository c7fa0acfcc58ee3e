"""Target faces: an image file (or a folder of them) -> float [3, R, R] in [-1, 1], prepared
exactly as the training data was (:func:`stylegan.data.cache.load_resized`: EXIF orientation,
RGB, the training :class:`~stylegan.data.cache.Crop`, then the Lanczos + 2x2-box pyramid).

Alignment: the generator learnt CelebA's *aligned* layout (``img_align_celeba``: 178x218
frames, eyes level at about 0.45 of the height and 0.38/0.62 of the width, mouth at about 0.7
of the height). Two frames are accepted:

- CelebA's 178:218 portrait frame (aspect within :data:`ASPECT_TOLERANCE`): the training crop
  is applied (an aligned CelebA image goes in as it is);
- a square image: taken as already cropped (a training-resolution face, a generated face, a
  projection), only resized.

Anything else (a landscape photo, a banner) is refused in one line: no face-landmark package
whose weights ship inside a PyPI wheel fits this project's torch range (README "Projecting real
faces"), so an arbitrary photo must be aligned to that layout by the user first.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import torch
from PIL import Image, UnidentifiedImageError
from torch import Tensor

from stylegan.data.cache import Crop, load_resized
from stylegan.errors import UserError

CELEBA_ASPECT = 178 / 218  # width / height of img_align_celeba
ASPECT_TOLERANCE = 0.1  # relative distance from a known frame that is still that frame
FULL_FRAME = Crop(size=1.0, center_y=0.5)  # a square image: the whole of it
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp")


class TargetError(UserError):
    """A target image that cannot be projected (missing, unreadable, not a face frame)."""


def list_targets(path: str | os.PathLike) -> list[Path]:
    """``path`` itself, or the images of a folder (sorted; not recursive)."""
    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise TargetError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in folder {path}")
        return files
    if not path.is_file():
        raise TargetError(f"image not found: {path} (pass image=FILE or image=FOLDER)")
    return [path]


def frame_crop(width: int, height: int, crop: Crop, where: object = "image") -> Crop:
    """The crop for a ``width`` x ``height`` frame: ``crop`` for CelebA's portrait frame, the
    whole image for a square one; a TargetError for any other aspect ratio."""
    aspect = width / height
    if abs(aspect - 1.0) <= ASPECT_TOLERANCE:
        return FULL_FRAME
    if abs(aspect / CELEBA_ASPECT - 1.0) <= ASPECT_TOLERANCE:
        return crop
    raise TargetError(
        f"{where} is {width}x{height} (aspect {aspect:.2f}): not a face frame; give an aligned "
        f"face in CelebA's 178x218 frame (aspect {CELEBA_ASPECT:.2f}) or a square face crop"
    )


def load_target_image(
    path: str | os.PathLike, resolution: int, *, crop: Crop | None = None
) -> Tensor:
    """The face at ``path`` as float [3, resolution, resolution] in [-1, 1] (CPU), cropped and
    resized as the training data; one-line TargetError when it cannot be used."""
    path = Path(path)
    if not path.is_file():
        raise TargetError(f"image not found: {path}")
    try:
        with Image.open(path) as image:
            width, height = image.size
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise TargetError(f"cannot read image {path}: {type(exc).__name__}") from None
    chosen = frame_crop(width, height, crop or Crop(), path)
    loaded = load_resized(path, chosen, [resolution])
    if isinstance(loaded, str):
        raise TargetError(f"cannot use image {path}: {loaded}")
    pixels = torch.from_numpy(loaded[0][resolution].copy())  # uint8 [3, R, R]
    return pixels.float() / 127.5 - 1.0


def load_targets(
    paths: Sequence[Path], resolution: int, *, crop: Crop | None = None
) -> list[Tensor]:
    """:func:`load_target_image` of every path, all checked before any projection starts."""
    return [load_target_image(p, resolution, crop=crop) for p in paths]
