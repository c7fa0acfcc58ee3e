"""Uploaded photos: refused unless they are a readable image of an allowed format and size.

Owns the upload rules of the explorer page: at most ``max_bytes`` (also Gradio's own
``max_file_size``, which stops a larger request while it streams), a format Pillow identifies
as one of :data:`FORMATS` (the name's suffix does not count), at most ``max_pixels``, and a file
that decodes to the end. An accepted upload is copied into the run folder under a name derived
from its content (never from the name the browser sent), so nothing is written anywhere else.
"""

from __future__ import annotations

import hashlib
import shutil
import warnings
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from stylegan.atomic import atomic_path
from stylegan.errors import UserError

FORMATS = {"PNG": ".png", "JPEG": ".jpg", "WEBP": ".webp", "BMP": ".bmp"}


class UploadError(UserError):
    """An upload the page refuses; the message is shown on the page."""


def check_upload(path: str | Path, *, max_bytes: int, max_pixels: int) -> str:
    """The Pillow format name of the image at ``path``; UploadError when it is too large, not
    an image, of another format, over ``max_pixels``, or truncated."""
    path = Path(path)
    size = path.stat().st_size
    if size > max_bytes:
        raise UploadError(
            f"the upload is {size / 1e6:.1f} MB, more than the {max_bytes / 1e6:g} MB allowed "
            "(upload.max_bytes): send a smaller photo"
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                fmt, (width, height) = image.format, image.size
                if fmt not in FORMATS:
                    raise UploadError(
                        f"the upload is a {fmt} image; send one of {', '.join(FORMATS)}"
                    )
                if width * height > max_pixels:
                    raise UploadError(
                        f"the upload is {width}x{height} pixels, more than upload.max_pixels "
                        f"({max_pixels}): send a smaller photo"
                    )
                image.load()  # decodes every byte: a truncated file fails here
    except UploadError:
        raise
    except (UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise UploadError(
            f"the upload is not an image ({', '.join(FORMATS)}): send a photo of a face"
        ) from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise UploadError(f"the upload is a damaged image ({exc}): send it again") from None
    return fmt


def keep_upload(path: str | Path, folder: Path, *, max_bytes: int, max_pixels: int) -> Path:
    """Check the upload at ``path`` and copy it to ``folder/<sha1 of its bytes><suffix>``."""
    fmt = check_upload(path, max_bytes=max_bytes, max_pixels=max_pixels)
    digest = hashlib.sha1(Path(path).read_bytes()).hexdigest()[:16]
    target = Path(folder) / f"upload_{digest}{FORMATS[fmt]}"
    if not target.exists():
        with atomic_path(target) as tmp:
            shutil.copyfile(path, tmp)
    return target
