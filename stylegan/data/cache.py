"""The prepared per-resolution uint8 cache: decode, crop and resize every image once.

A cache is a folder named by a key that hashes the source (relative paths, sizes and mtimes of
the images used), the crop and the resize method. It holds ``manifest.json`` (the images that
decoded, in order; how many were skipped) and one ``images_{R}.npy`` per resolution, uint8
``[N, 3, R, R]``, read back memory-mapped. Building decodes each image once and writes every
missing resolution in that pass; a later run that needs another resolution decodes again only
for that one. Files are written under temporary names and renamed into place, so a killed build
is never mistaken for a finished one. Unreadable or truncated images are skipped and counted in
one warning.
"""

import hashlib
import json
import os
import warnings
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

RESIZE_METHOD = "pil-lanczos-v1"  # part of the key: change it when the resize code changes
MANIFEST = "manifest.json"


@dataclass(frozen=True)
class Crop:
    """A square centre crop as fractions of the frame, so it means the same at any image size."""

    size: float = 0.72  # side as a fraction of the width (ProGAN's CelebA crop: 128 of 178 px)
    center_y: float = 0.555  # crop centre as a fraction of the height (ProGAN: 121 of 218 px)

    def box(self, width: int, height: int) -> tuple[int, int, int, int]:
        side = max(1, round(self.size * width))
        left = round(width / 2 - side / 2)
        top = round(self.center_y * height - side / 2)
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
) -> dict[int, np.ndarray] | None:
    """One image cropped and resized to each resolution, uint8 [3, R, R]; None if unreadable."""
    try:
        with Image.open(path) as image:
            image.load()  # truncated files raise here
            rgb = image.convert("RGB")
    except (OSError, ValueError, Image.DecompressionBombError):
        return None
    cropped = rgb.crop(crop.box(*rgb.size))
    return {
        r: np.asarray(cropped.resize((r, r), Image.Resampling.LANCZOS)).transpose(2, 0, 1)
        for r in resolutions
    }


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
        return self.folder / f"images_{resolution}.npy"

    def has(self, resolution: int) -> bool:
        return self.path(resolution).is_file()

    def array(self, resolution: int) -> np.ndarray:
        """uint8 [N, 3, R, R], memory-mapped (nothing is read until indexed)."""
        return np.load(self.path(resolution), mmap_mode="r")


def _warn_if_upsampling(sample: Path, crop: Crop, resolution: int) -> None:
    try:
        with Image.open(sample) as image:
            left, _, right, _ = crop.box(*image.size)
    except OSError:
        return
    if right - left < resolution:
        warnings.warn(
            f"the {right - left}px crop of {sample.name} is smaller than {resolution}px: "
            "images are upsampled (use larger source images for this resolution)",
            stacklevel=3,
        )


def _replace_json(path: Path, data: dict) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)


def build_cache(
    files: Sequence[str],
    *,
    root: str | os.PathLike,
    resolutions: Sequence[int],
    crop: Crop,
    cache_dir: str | os.PathLike,
    num_workers: int = 2,
) -> PreparedImages:
    """The prepared cache of ``files`` (relative to ``root``): reused, or built where missing."""
    root = Path(root)
    folder = Path(cache_dir) / cache_key(root, files, crop)
    folder.mkdir(parents=True, exist_ok=True)
    if (folder / MANIFEST).is_file():
        prepared = PreparedImages(folder)
        missing = sorted({r for r in resolutions if not prepared.has(r)})
        if not missing:
            return prepared
        sources = prepared.files  # the images known to decode
    else:
        missing, sources = sorted(set(resolutions)), list(files)

    tmp_paths = {r: folder / f".images_{r}.npy.tmp" for r in missing}
    arrays = {
        r: np.lib.format.open_memmap(
            tmp_paths[r], mode="w+", dtype=np.uint8, shape=(len(sources), 3, r, r)
        )
        for r in missing
    }
    if sources:
        _warn_if_upsampling(root / sources[0], crop, max(missing))
    decoded: list[str] = []
    unreadable: list[str] = []

    def work(name: str) -> tuple[str, dict[int, np.ndarray] | None]:
        return name, load_resized(root / name, crop, missing)

    with ThreadPoolExecutor(max_workers=max(1, num_workers)) as pool:
        results = pool.map(work, sources) if num_workers > 0 else map(work, sources)
        progress = tqdm(
            results,
            total=len(sources),
            desc=f"Preparing {len(sources)} images at {missing}px",
            unit="img",
            leave=False,
        )
        for name, images in progress:
            if images is None:
                unreadable.append(name)
                continue
            for r, image in images.items():
                arrays[r][len(decoded)] = image
            decoded.append(name)
    for array in arrays.values():
        array.flush()
    arrays.clear()  # closes the memmaps before the files are renamed
    if unreadable:
        examples = ", ".join(unreadable[:3])
        warnings.warn(
            f"skipped {len(unreadable)} unreadable or truncated image(s), e.g. {examples}",
            stacklevel=2,
        )
    n = len(decoded)
    for r in missing:
        final = folder / f"images_{r}.npy"
        if n < len(sources):  # drop the rows of skipped images
            full = np.load(tmp_paths[r], mmap_mode="r")
            trimmed = folder / f".images_{r}.trim.npy.tmp"
            out = np.lib.format.open_memmap(trimmed, mode="w+", dtype=np.uint8, shape=(n, 3, r, r))
            out[:] = full[:n]
            out.flush()
            del out, full
            os.replace(trimmed, tmp_paths[r])
        os.replace(tmp_paths[r], final)
    if not (folder / MANIFEST).is_file():
        _replace_json(
            folder / MANIFEST,
            {"files": decoded, "skipped": len(unreadable), "crop": [crop.size, crop.center_y]},
        )
    return PreparedImages(folder)
