"""Writing figures: file names that say what they are, and PNG / GIF / MP4 files (all atomic).

Owns the names (``faces_seed0_n64_psi0.7.png``, ``truncation_seeds0-5_psi-1..1.png``,
``mixing_coarse.png``, ``noise_std_seed0.png``, ``interp_w_seeds0-1-2.gif``), the grid layouts
and the encoders: PNG through :mod:`stylegan.imaging`, GIF through Pillow, MP4 through
imageio-ffmpeg when it is installed. Every ``write_*`` takes images that are already computed
(float in [-1, 1] or uint8; the faces as a stream of batches) and returns the paths it wrote;
nothing here runs a generator.
"""

from __future__ import annotations

import importlib.util
import math
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor
from tqdm import tqdm

from stylegan.atomic import atomic_path
from stylegan.errors import ConfigError
from stylegan.imaging import save_grid, save_png, to_uint8
from stylegan.sampling.layers import layer_label
from stylegan.sampling.sources import Source, source_label

MAX_FPS = 100  # GIF frame durations are in 10 ms units: faster is not representable

# ----------------------------------------------------------------------------------------------
# Names.


def _fmt(value: float) -> str:
    return f"{float(value):g}"


def psi_label(psi: float | Sequence[float]) -> str:
    """``psi0.7``, or ``psi-perlayer`` for a per-layer list."""
    return "psi-perlayer" if isinstance(psi, Sequence) else f"psi{_fmt(psi)}"


def seeds_label(seeds: Sequence[Source], *, path: bool = False) -> str:
    """``seeds0-5`` for a contiguous run, ``seeds3_7_9`` otherwise; ``path``: ``seeds0-1-2``.
    A projected face (:class:`~stylegan.sampling.sources.FixedLatent`) shows its name:
    ``seeds0_face003``."""
    seeds = [s if isinstance(s, int) else source_label(s) for s in seeds]
    if path:
        return "seeds" + "-".join(map(str, seeds))
    if len(seeds) == 1:
        return f"seed{seeds[0]}"
    if not all(isinstance(s, int) for s in seeds):
        return (
            "seeds"
            + "_".join(map(str, seeds[:6]))
            + (f"_etc{len(seeds)}" if len(seeds) > 6 else "")
        )
    if seeds == list(range(seeds[0], seeds[0] + len(seeds))):
        return f"seeds{seeds[0]}-{seeds[-1]}"
    if len(seeds) > 6:
        return f"seeds{seeds[0]}_{seeds[1]}_etc{len(seeds)}"
    return "seeds" + "_".join(map(str, seeds))


def _effective_cutoff(psi: float | Sequence[float], cutoff: int | None) -> int | None:
    """The cutoff when ``psi`` truncates anything, else None: at ψ=1 it changes no pixel, so it
    stays out of the file name."""
    psis = psi if isinstance(psi, Sequence) else [psi]
    return cutoff if any(float(p) != 1.0 for p in psis) else None


def _suffix(cutoff: int | None, noise_mode: str | None) -> str:
    parts = [] if cutoff is None else [f"cutoff{cutoff}"]
    if noise_mode is not None and noise_mode != "random":
        parts.append(f"noise-{noise_mode}")
    return "".join(f"_{p}" for p in parts)


# ----------------------------------------------------------------------------------------------
# Encoders.


def check_fps(fps: float) -> float:
    """Frames per second of a GIF/MP4: in (0, MAX_FPS]."""
    if not 0 < fps <= MAX_FPS:
        raise ConfigError(f"interpolation.fps must be a number in (0, {MAX_FPS}], got {fps!r}")
    return float(fps)


def _grid_nrow(count: int) -> int:
    return max(1, math.ceil(math.sqrt(count)))


def _uint8_hwc(image: Tensor) -> np.ndarray:
    """One image [C, H, W] (float [-1, 1] or uint8) -> uint8 [H, W, C] (or [H, W] for C == 1)."""
    if image.dtype != torch.uint8:
        image = to_uint8(image[None])[0]
    array = image.permute(1, 2, 0).cpu().numpy()
    return array[:, :, 0] if array.shape[2] == 1 else array


def save_gif(frames: Tensor, path: str | os.PathLike, *, fps: float) -> Path:
    """Animated, looping GIF of frames [F, C, H, W] (float [-1, 1] or uint8), written atomically.

    GIF stores 256 colours per frame and merges identical consecutive frames.
    """
    path = Path(path)
    images = [Image.fromarray(_uint8_hwc(f)) for f in frames]
    with atomic_path(path) as tmp:
        images[0].save(
            tmp,
            format="GIF",
            save_all=True,
            append_images=images[1:],
            duration=max(1, round(1000 / fps)),
            loop=0,
        )
    return path


def mp4_available() -> bool:
    """True when imageio-ffmpeg (the ``video`` extra) is installed."""
    return importlib.util.find_spec("imageio_ffmpeg") is not None


def save_mp4(frames: Tensor, path: str | os.PathLike, *, fps: float) -> Path:
    """H.264 MP4 of frames [F, C, H, W] through imageio-ffmpeg (check :func:`mp4_available`)."""
    import imageio.v2 as imageio

    path = Path(path)
    with atomic_path(path) as tmp:
        writer = imageio.get_writer(
            tmp,
            format="FFMPEG",
            mode="I",
            fps=fps,
            codec="libx264",
            pixelformat="yuv420p",
            macro_block_size=1,
            quality=8,
        )
        try:
            for frame in frames:
                writer.append_data(_uint8_hwc(frame))
        finally:
            writer.close()
    return path


# ----------------------------------------------------------------------------------------------
# One writer per figure.


def check_faces_output(grid_max: int, save_individual: bool) -> None:
    """The faces figure must write something: a grid (``grid_max`` >= 1) or single images."""
    if grid_max < 0:
        raise ConfigError(f"grid_max must be an integer >= 0, got {grid_max!r}")
    if grid_max == 0 and not save_individual:
        raise ConfigError("grid_max=0 and save_individual=false: faces would write nothing")


def faces_name(
    *, seed: int, n: int, psi: float | Sequence[float], cutoff: int | None, noise_mode: str
) -> str:
    """``faces_seed0_n64_psi0.7[_cutoff8][_noise-const]``: the faces figure's file stem."""
    suffix = _suffix(_effective_cutoff(psi, cutoff), noise_mode)
    return f"faces_seed{seed}_n{n}_{psi_label(psi)}{suffix}"


def write_faces(
    batches: Iterable[Tensor],
    out_dir: Path,
    *,
    seed: int,
    n: int,
    psi: float | Sequence[float] = 1.0,
    cutoff: int | None = None,
    noise_mode: str = "random",
    save_individual: bool = False,
    grid_max: int = 256,
    progress: bool | None = None,
) -> list[Path]:
    """The images of seeds seed..seed+n-1, arriving as ``batches`` in seed order:
    ``faces_seed{seed}_n{n}_psi{psi}[...].png`` (first ``grid_max`` images) and, with
    ``save_individual``, ``faces_seed..._psi.../seedNNNNNN.png`` for each.

    Consumes the batches one at a time, so ``n`` can be large; ``progress=None`` shows a bar on a
    terminal only.
    """
    name = faces_name(seed=seed, n=n, psi=psi, cutoff=cutoff, noise_mode=noise_mode)
    grid_count = min(n, max(0, grid_max))
    grid: list[Tensor] = []
    written: list[Path] = []
    bar = tqdm(
        total=n, unit="img", desc="faces", disable=None if progress is None else not progress
    )
    with bar:
        done = 0
        for images in batches:
            images = to_uint8(images)
            kept = sum(len(g) for g in grid)
            if kept < grid_count:
                grid.append(images[: grid_count - kept])
            if save_individual:
                for k, image in enumerate(images):
                    path = out_dir / name / f"seed{seed + done + k:06d}.png"
                    save_png(Image.fromarray(_uint8_hwc(image)), path)
            done += len(images)
            bar.update(len(images))
    if save_individual:
        written.append(out_dir / name)
    if grid_count:
        path = out_dir / f"{name}.png"
        written.insert(0, save_grid(torch.cat(grid), path, nrow=_grid_nrow(grid_count)))
    return written


def write_truncation(
    images: Tensor,
    out_dir: Path,
    *,
    seeds: Sequence[int],
    psis: Sequence[float | Sequence[float]],
    cutoff: int | None = None,
    noise_mode: str = "random",
) -> list[Path]:
    """``truncation_seeds0-5_psi-1..1.png``: one row per seed, one column per ψ."""
    if all(not isinstance(p, Sequence) for p in psis):
        span = f"psi{_fmt(psis[0])}..{_fmt(psis[-1])}" if len(psis) > 1 else psi_label(psis[0])
    else:
        span = f"psi-{len(psis)}values"
    name = f"truncation_{seeds_label(seeds)}_{span}{_suffix(cutoff, noise_mode)}.png"
    return [save_grid(images, out_dir / name, nrow=len(psis))]


def write_mixing(images: Tensor, out_dir: Path, *, sources: int, layers: object) -> list[Path]:
    """``mixing_<coarse|middle|fine|layersA-B>.png``: the Fig. 3 grid, ``sources + 1`` per row."""
    name = f"mixing_{layer_label(layers)}.png"
    return [save_grid(images, out_dir / name, nrow=sources + 1)]


def write_noise(
    draws: Tensor, std: Tensor, layers: Tensor, out_dir: Path, *, seed: int
) -> list[Path]:
    """``noise_draws_seed{s}.png`` (the draws in a row), ``noise_std_seed{s}.png`` (grey uint8
    [r, r]), ``noise_layers_seed{s}.png`` (all / none / fine only / coarse only)."""
    return [
        save_grid(draws, out_dir / f"noise_draws_seed{seed}.png", nrow=len(draws)),
        save_png(Image.fromarray(std.numpy(), mode="L"), out_dir / f"noise_std_seed{seed}.png"),
        save_grid(layers, out_dir / f"noise_layers_seed{seed}.png", nrow=len(layers)),
    ]


def write_interpolation(
    frames: Tensor,
    out_dir: Path,
    *,
    seeds: Sequence[int],
    space: str,
    fps: float,
    mp4: bool,
    psi: float | Sequence[float] = 1.0,
    cutoff: int | None = None,
    noise_mode: str = "random",
) -> list[Path]:
    """``interp_{z|w}_seeds0-1-2.gif`` and, with ``mp4`` (the caller checks
    :func:`mp4_available`), the same ``.mp4``."""
    frames = to_uint8(frames)
    suffix = _suffix(_effective_cutoff(psi, cutoff), noise_mode)
    name = f"interp_{space}_{seeds_label(seeds, path=True)}{suffix}"
    if not isinstance(psi, Sequence) and psi != 1:
        name += f"_{psi_label(psi)}"
    written = [save_gif(frames, out_dir / f"{name}.gif", fps=fps)]
    if mp4:
        written.append(save_mp4(frames, out_dir / f"{name}.mp4", fps=fps))
    return written
