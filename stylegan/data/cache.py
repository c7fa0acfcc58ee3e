"""The prepared per-resolution uint8 cache: decode, crop and resize every image once.

A cache is a folder named by a key that hashes the source (relative paths, sizes and mtimes of
the images used), the crop and the resize method. It holds ``manifest.json`` (the images that
decoded, in order; how many were skipped) and one ``images_{R}.npy`` per resolution, uint8
``[N, 3, R, R]``, read back memory-mapped. Building decodes each image once and writes every
missing resolution in that pass; a later run that needs another resolution decodes again only
for that one. Files are written under temporary names (unique per process, in the same folder)
and renamed into place by :func:`stylegan.atomic.atomic_path` (fsynced first; a failed write is
one line), so a killed build is never mistaken for a finished one and concurrent builders (one
per node under DDP) never write into each other's files; temporaries left by a killed build on
this host are removed by the next build.

Hostile inputs: every mode PIL decodes becomes RGB (grayscale replicated, CMYK converted, images
with an alpha channel or a transparent palette composited over white). Files that cannot be used
are skipped and counted by reason in one warning line: empty files, files the process may not
read, truncated or non-image files (PIL's ``ImageFile.LOAD_TRUNCATED_IMAGES`` stays off), images
above PIL's decompression-bomb limit (``Image.MAX_IMAGE_PIXELS``; refused from the header, before
decoding, so PIL's own warning is silenced), and images whose crop is under ``MIN_CROP_SIDE``
pixels (a 1x1 image). The cache is built before training starts, so none of them can stop a run
half-way.
"""

import contextlib
import hashlib
import json
import logging
import os
import warnings
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import ExifTags, Image, ImageOps
from tqdm import tqdm

from stylegan.atomic import atomic_path, remove_dead_temporaries
from stylegan.errors import UserError

RESIZE_METHOD = "pil-exif-lanczos-box-v4"  # part of the key: change it when decode/resize changes
MANIFEST = "manifest.json"
MIN_CROP_SIDE = 8  # pixels; smaller crops (e.g. a 1x1 image) are skipped, not upsampled
BACKGROUND = (255, 255, 255)  # what transparent pixels become
log = logging.getLogger(__name__)
# Images above the limit are refused from their header (see load_resized), never decoded.
warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)

# Why an image was skipped: the first words of load_resized's reason -> the summary's wording.
SKIP_REASONS = {
    "empty": "empty",
    "permission": "unreadable (permission denied)",
    "too-large": "above the decompression-bomb limit",
    "too-small": f"too small (crop under {MIN_CROP_SIDE}px)",
    "unreadable": "truncated or not an image",
}


class DataError(UserError, FileNotFoundError):
    """The data folder is missing, empty, unreadable, or not in the expected layout."""


@dataclass(frozen=True)
class Crop:
    """A square centre crop as fractions of the frame, so it means the same at any image size."""

    size: float = 0.72  # side as a fraction of the width (ProGAN's CelebA crop: 128 of 178 px)
    center_y: float = 0.555  # crop centre as a fraction of the height (ProGAN: 121 of 218 px)

    def box(self, width: int, height: int) -> tuple[int, int, int, int]:
        """``(left, top, right, bottom)`` in pixels: ``side = round(size * width)``, centred
        horizontally, centre at ``center_y * height``. A square that would leave the frame (other
        image folders: landscape frames, a low face) is shrunk to the shorter side and shifted in,
        so nothing is padded with black."""
        side = max(1, min(round(self.size * width), width, height))
        left = round(width / 2 - side / 2)
        top = round(self.center_y * height - side / 2)
        left = min(max(left, 0), width - side)
        top = min(max(top, 0), height - side)
        return left, top, left + side, top + side


def cache_key(root: Path, files: Sequence[str], crop: Crop) -> str:
    """Hash of the images used (path, size, mtime), the crop and the resize method."""
    digest = hashlib.sha1()
    digest.update(f"{crop.size:.6f}|{crop.center_y:.6f}|{RESIZE_METHOD}".encode())
    for name in files:
        stat = (root / name).stat()
        digest.update(f"\n{name}|{stat.st_size}|{stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:20]


def load_resized(
    path: Path, crop: Crop, resolutions: Sequence[int]
) -> tuple[dict[int, np.ndarray], int] | str:
    """Decode ``path`` once; crop and resize it to each resolution.

    Returns ``({R: uint8 [3, R, R]}, crop side in pixels)``, or why the file cannot be used: one
    line starting with a key of :data:`SKIP_REASONS`.
    """
    try:
        if path.stat().st_size == 0:
            return "empty: a zero-byte file"
        with Image.open(path) as image:
            pixels, limit = image.width * image.height, Image.MAX_IMAGE_PIXELS
            if limit and pixels > limit:
                return f"too-large: {image.width}x{image.height} px is above PIL's limit of {limit}"
            image.load()  # the full decode: truncated files raise here
            if image.getexif().get(ExifTags.Base.Orientation, 1) != 1:
                image = ImageOps.exif_transpose(image)  # phone photos in an image folder
            rgb = _to_rgb(image)
    except PermissionError as error:
        return f"permission: {error.strerror or error}"
    except Image.DecompressionBombError as error:  # above twice the limit: refused by PIL itself
        return f"too-large: {error}".splitlines()[0]
    except Exception as error:  # PIL raises OSError, SyntaxError, ValueError, EOFError, ...
        return f"unreadable: {type(error).__name__}: {error}".splitlines()[0]
    side = crop.box(*rgb.size)[2] - crop.box(*rgb.size)[0]
    if side < MIN_CROP_SIDE:
        return f"too-small: {rgb.width}x{rgb.height} px gives a {side}px crop"
    cropped = rgb.crop(crop.box(*rgb.size))
    return resize_pyramid(cropped, resolutions), cropped.width


def box_downsample(image: np.ndarray) -> np.ndarray:
    """uint8 ``[C, R, R]`` -> ``[C, R/2, R/2]``: each pixel the rounded mean of a 2×2 block."""
    x = image.astype(np.float32)
    total = x[:, 0::2, 0::2] + x[:, 0::2, 1::2] + x[:, 1::2, 0::2] + x[:, 1::2, 1::2]
    return np.rint(total * 0.25).clip(0, 255).astype(np.uint8)


def resize_pyramid(cropped: Image.Image, resolutions: Sequence[int]) -> dict[int, np.ndarray]:
    """uint8 ``[3, R, R]`` per resolution, built as the official dataset tool builds its levels.

    The base level is a Lanczos resize of the crop to the largest power of two the crop holds;
    every lower power of two is the 2×2 box average of the level above, which is what D's
    average-pool skip path and the fade-in of reals compute, so a level never carries detail that
    the one above it lacks. (The official tool chains the averages in float and rounds each level;
    chaining the rounded levels differs by at most one grey level.) Resolutions above the base
    (a crop smaller than the resolution) are Lanczos resizes of the crop.
    """

    def lanczos(r: int) -> np.ndarray:
        return np.asarray(cropped.resize((r, r), Image.Resampling.LANCZOS)).transpose(2, 0, 1)

    base = 1 << max(2, min(cropped.size).bit_length() - 1)
    images = {r: lanczos(r) for r in resolutions if r > base or r & (r - 1)}
    chained = sorted((r for r in resolutions if r not in images), reverse=True)
    level, r = (lanczos(base), base) if chained else (None, 0)
    for wanted in chained:
        while r > wanted:
            level, r = box_downsample(level), r // 2
        images[wanted] = np.ascontiguousarray(level)
    return images


def _to_rgb(image: Image.Image) -> Image.Image:
    """RGB of any PIL mode; transparency (alpha, LA, a palette's transparent index) is
    composited over :data:`BACKGROUND` instead of exposing whatever colour hides under it."""
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (*BACKGROUND, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def skip_summary(unreadable: Sequence[tuple[str, str]]) -> str:
    """``"2 empty, 1 too small (crop under 8px)"``: the skipped files counted by reason."""
    counts: dict[str, int] = {}
    for _, reason in unreadable:
        key = reason.split(":", 1)[0]
        label = SKIP_REASONS.get(key, SKIP_REASONS["unreadable"])
        counts[label] = counts.get(label, 0) + 1
    return ", ".join(f"{n} {label}" for label, n in counts.items())


def prepared_path(folder: Path, resolution: int) -> Path:
    """The array of ``resolution`` in a cache folder: ``images_{R}.npy``."""
    return folder / f"images_{resolution}.npy"


class PreparedImages:
    """The cache of one key: the manifest and memory-mapped arrays per resolution."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        manifest = json.loads((folder / MANIFEST).read_text())
        self.files: list[str] = manifest["files"]
        self.skipped: int = manifest["skipped"]
        self.key: str = folder.name

    def __len__(self) -> int:
        return len(self.files)

    def path(self, resolution: int) -> Path:
        return prepared_path(self.folder, resolution)

    def has(self, resolution: int) -> bool:
        """Whether the array of ``resolution`` is in place with one row per manifest file."""
        try:
            array = np.load(self.path(resolution), mmap_mode="r")
        except (OSError, ValueError):
            return False
        expected = (len(self.files), 3, resolution, resolution)
        return array.dtype == np.uint8 and array.shape == expected

    def array(self, resolution: int) -> np.ndarray:
        """uint8 [N, 3, R, R], memory-mapped (nothing is read until indexed)."""
        return np.load(self.path(resolution), mmap_mode="r")


def _truncate_npy(path: Path, rows: int) -> None:
    """Keep the first ``rows`` rows of a C-order ``.npy`` in place: rewrite the shape in the
    header (padded to its old length, so the data does not move) and cut the file."""
    with open(path, "r+b") as f:
        version = np.lib.format.read_magic(f)
        read_header = {(1, 0): np.lib.format.read_array_header_1_0}.get(
            version, np.lib.format.read_array_header_2_0
        )
        shape, fortran_order, dtype = read_header(f)
        data_offset = f.tell()
        assert not fortran_order and rows <= shape[0]
        prefix = 10 if version == (1, 0) else 12  # magic + version + header-length field
        new_shape = (rows, *shape[1:])
        descr = np.lib.format.dtype_to_descr(dtype)
        header = f"{{'descr': {descr!r}, 'fortran_order': False, 'shape': {new_shape!r}, }}"
        header = header.ljust(data_offset - prefix - 1) + "\n"
        assert len(header) == data_offset - prefix
        f.seek(prefix)
        f.write(header.encode("latin1"))
        f.truncate(data_offset + int(np.prod(new_shape)) * dtype.itemsize)


def build_cache(
    files: Sequence[str],
    *,
    root: str | os.PathLike,
    resolutions: Sequence[int],
    crop: Crop,
    cache_dir: str | os.PathLike,
    num_workers: int = 2,
    progress: bool = True,
) -> PreparedImages:
    """The prepared cache of ``files`` (relative to ``root``): reused, or built where missing.

    A cache hit (every resolution in place) decodes nothing. Otherwise each image is decoded once
    by ``num_workers`` threads (PIL releases the GIL while decoding and resampling; 0 = inline)
    and every missing resolution is written in that pass.
    """
    root = Path(root)
    folder = Path(cache_dir) / cache_key(root, files, crop)
    folder.mkdir(parents=True, exist_ok=True)
    prepared = PreparedImages(folder) if (folder / MANIFEST).is_file() else None
    if prepared is not None:
        missing = sorted({r for r in resolutions if not prepared.has(r)})
        if not missing:
            return prepared
        sources = prepared.files  # the images known to decode
    else:
        missing, sources = sorted(set(resolutions)), list(files)
    if not sources:
        raise DataError(f"no images to prepare under {root}")
    remove_dead_temporaries(folder)

    with contextlib.ExitStack() as writes:  # renamed into place once every array is written
        tmp_paths = {
            r: writes.enter_context(atomic_path(prepared_path(folder, r))) for r in missing
        }
        decoded, unreadable, min_side = _decode_into(
            root, sources, crop, missing, tmp_paths, num_workers, progress
        )
        if prepared is not None and unreadable:
            name, reason = unreadable[0]
            raise DataError(
                f"{len(unreadable)} image(s) of the prepared cache {folder} no longer decode, "
                f"e.g. {root / name} ({reason}); delete that folder to rebuild it"
            )
        if not decoded:
            name, reason = unreadable[0]
            raise DataError(
                f"none of the {len(sources)} images under {root} could be read, "
                f"e.g. {root / name} ({reason})"
            )
        if unreadable:
            examples = ", ".join(f"{root / name} ({reason})" for name, reason in unreadable[:2])
            warnings.warn(
                f"skipped {len(unreadable)} unreadable or unusable image(s) of {len(sources)} "
                f"({skip_summary(unreadable)}), e.g. {examples}",
                stacklevel=2,
            )
            for r in missing:  # drop the unused rows at the end
                _truncate_npy(tmp_paths[r], len(decoded))
        if min_side < max(missing):
            warnings.warn(
                f"the crop of some source images is {min_side}px, smaller than {max(missing)}px: "
                "those images are upsampled (use larger source images for this resolution)",
                stacklevel=2,
            )
    if prepared is None:  # written last: a folder without it is rebuilt from scratch
        manifest = json.dumps(
            {
                "files": decoded,
                "skipped": len(unreadable),
                "skipped_by_reason": skip_summary(unreadable),
                "skipped_examples": [f"{name}: {reason}" for name, reason in unreadable[:20]],
                "crop": [crop.size, crop.center_y],
                "resize": RESIZE_METHOD,
                "root": str(root),
            }
        )
        with atomic_path(folder / MANIFEST) as tmp:
            tmp.write_text(manifest)
    log.info("prepared %d images at %s px in %s", len(decoded), missing, folder)
    return PreparedImages(folder)


def _decode_into(
    root: Path,
    sources: Sequence[str],
    crop: Crop,
    resolutions: Sequence[int],
    tmp_paths: dict[int, Path],
    num_workers: int,
    progress: bool,
) -> tuple[list[str], list[tuple[str, str]], int]:
    """Decode ``sources`` once into memory-mapped ``tmp_paths`` (one per resolution), readable
    images packed first. Returns (decoded names, [(unreadable name, reason)], smallest crop)."""
    arrays = {
        r: np.lib.format.open_memmap(
            tmp_paths[r], mode="w+", dtype=np.uint8, shape=(len(sources), 3, r, r)
        )
        for r in resolutions
    }
    decoded: list[str] = []
    unreadable: list[tuple[str, str]] = []
    min_side = 1 << 30

    def work(name: str):
        return name, load_resized(root / name, crop, resolutions)

    pool = ThreadPoolExecutor(max_workers=num_workers) if num_workers > 0 else None
    try:
        results = pool.map(work, sources) if pool else map(work, sources)
        bar = tqdm(
            results,
            total=len(sources),
            desc=f"Preparing {len(sources)} images at {list(resolutions)}px",
            unit="img",
            leave=False,
            # only ever forced off: a bar left to tqdm's default obeys TQDM_DISABLE=1
            **({} if progress else {"disable": True}),
        )
        for name, result in bar:
            if isinstance(result, str):
                unreadable.append((name, result))
                continue
            images, side = result
            for r, image in images.items():
                arrays[r][len(decoded)] = image
            decoded.append(name)
            min_side = min(min_side, side)
    finally:
        if pool is not None:  # on an error or Ctrl-C, do not decode the queued rest first
            pool.shutdown(wait=True, cancel_futures=True)
    for array in arrays.values():
        array.flush()
    arrays.clear()  # closes the memmaps before the files are truncated or renamed
    return decoded, unreadable, min_side
