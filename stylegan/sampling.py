"""Figures from a trained generator: faces, truncation sweep, style mixing, noise, interpolation.

Owns everything ``sample.py`` draws, as functions of a :class:`~stylegan.networks.Generator` and
plain arguments: validation of the user-facing values (seeds, ψ, cutoff, noise mode, layer
ranges) with one-line :class:`~stylegan.errors.ConfigError` messages; the per-seed latents and
noise that make every image reproducible; the figure tensors (float images in [-1, 1] on the CPU);
and the ``write_*`` functions that turn them into files (PNG through :mod:`stylegan.imaging`, GIF
through Pillow, MP4 through imageio-ffmpeg when it is installed).

Reproducibility: seed ``s`` owns two CPU random streams, independent of the batch size, of the
device and of the other seeds drawn with it:

- ``z`` = the first ``z_dim`` normal draws of ``torch.Generator().manual_seed(s)``;
- noise draw ``d`` (``d = 0`` for ordinary images) = one normal map per noise layer, 4×4 first,
  from a CPU generator seeded with ``numpy.random.SeedSequence([s, d])``.

With ``noise_mode="random"`` these per-seed maps are added by forward hooks on the generator's
``NoiseInjection`` layers while the synthesis runs with ``noise_mode="none"``; the same hooks
restrict noise to a subset of layers for the noise figures. The networks need no change and the
global torch RNG is never used. Matmul/conv kernels round differently for different batch shapes,
so every forward has exactly ``batch_size`` rows (the last batch is padded): a seed then gives the
same bytes whether it is drawn alone or among 64 others, in this run or the next, for a given
``batch_size`` and device (another batch size or device may move a rare pixel by one uint8
level). Images are rendered at the resolution the generator was trained to (``resolution``) with
``alpha = 1``.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import math
import os
import re
from collections.abc import Callable, Iterator, Sequence
from numbers import Integral, Real
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor
from tqdm import tqdm

from stylegan.atomic import atomic_path
from stylegan.errors import ConfigError
from stylegan.imaging import save_grid, save_png, to_uint8
from stylegan.networks import Generator
from stylegan.networks.layers import NOISE_MODES, NoiseInjection

log = logging.getLogger(__name__)

PSI_LIMIT = 2.0  # |ψ| above this extrapolates far outside the learned distribution
NOISE_ALIASES = {"fixed": "const"}
FIGURES = ("faces", "truncation", "mixing", "noise", "interpolation")
# Named layer ranges by the resolution of the layers (inclusive bounds; None = no upper bound),
# as in the paper's style-mixing figure (Fig. 3).
LAYER_RANGES: dict[str, tuple[int, int | None]] = {
    "coarse": (4, 8),
    "middle": (16, 32),
    "fine": (64, None),
    "all": (4, None),
}
FINE_NOISE_FROM = 64  # Fig. 5: "fine" noise = layers at 64px and up, "coarse" = 4-32px
BLANK = 1.0  # value of the empty top-left cell of the mixing grid (white)

# ----------------------------------------------------------------------------------------------
# Validation of user-facing values (one-line ConfigErrors).


def _is_int(value: object) -> bool:
    return isinstance(value, Integral) and not isinstance(value, bool)


def check_int(value: object, name: str, *, minimum: int) -> int:
    """``value`` as an int >= ``minimum``, else a ConfigError naming ``name``."""
    if not _is_int(value) or int(value) < minimum:
        raise ConfigError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def check_positive_int(value: object, name: str) -> int:
    """``value`` as an int >= 1, else a ConfigError naming ``name``."""
    return check_int(value, name, minimum=1)


def check_bool(value: object, name: str) -> bool:
    """A true/false switch (a string like "no" would otherwise count as true)."""
    if not isinstance(value, bool):
        raise ConfigError(f"{name} must be true or false, got {value!r}")
    return value


def check_seed(seed: object, name: str = "seed") -> int:
    """A seed is a non-negative integer."""
    if not _is_int(seed) or int(seed) < 0:
        raise ConfigError(f"{name} must be a non-negative integer, got {seed!r}")
    return int(seed)


def check_seeds(seeds: object, name: str = "seeds", *, minimum: int = 1) -> list[int]:
    """A non-empty list of seeds (at least ``minimum`` of them)."""
    if _is_int(seeds):
        seeds = [seeds]
    if isinstance(seeds, (str, bytes)) or not isinstance(seeds, Sequence):
        raise ConfigError(f"{name} must be a list of non-negative integers, got {seeds!r}")
    if len(seeds) < minimum:
        raise ConfigError(f"{name} needs at least {minimum} seed(s), got {list(seeds)!r}")
    return [check_seed(s, name) for s in seeds]


def check_noise_mode(noise_mode: object) -> str:
    """``random`` | ``const`` | ``none`` (``fixed`` is an alias of ``const``)."""
    mode = NOISE_ALIASES.get(noise_mode, noise_mode) if isinstance(noise_mode, str) else None
    if mode not in NOISE_MODES:
        raise ConfigError(
            f"noise must be one of random, const (alias fixed), none; got {noise_mode!r}"
        )
    return mode


def _check_psi_value(value: object, name: str) -> float:
    if not isinstance(value, Real) or isinstance(value, bool) or not math.isfinite(value):
        raise ConfigError(
            f"{name} must be a number in [-{PSI_LIMIT:g}, {PSI_LIMIT:g}], got {value!r}"
        )
    if abs(float(value)) > PSI_LIMIT:
        raise ConfigError(
            f"{name}={value!r} is out of range: |ψ| must be <= {PSI_LIMIT:g} "
            "(1 = no truncation, 0 = the mean face, 0.7 is typical)"
        )
    return float(value)


def check_psi(psi: object, name: str = "psi") -> float | list[float]:
    """ψ: a number in [-PSI_LIMIT, PSI_LIMIT], or a non-empty list of them (one per layer)."""
    if isinstance(psi, Sequence) and not isinstance(psi, (str, bytes)):
        if not psi:
            raise ConfigError(f"{name} must be a number or a non-empty per-layer list, got []")
        return [_check_psi_value(p, name) for p in psi]
    return _check_psi_value(psi, name)


def check_cutoff(cutoff: object) -> int | None:
    """Truncation cutoff: ``None`` (every layer) or an integer >= 0 (layers < cutoff)."""
    if cutoff is None:
        return None
    if not _is_int(cutoff) or int(cutoff) < 0:
        raise ConfigError(f"cutoff must be null or a non-negative integer, got {cutoff!r}")
    return int(cutoff)


def check_space(space: object) -> str:
    """Interpolation space: ``z`` (slerp) or ``w`` (lerp)."""
    if space not in ("z", "w"):
        raise ConfigError(f"interpolation.space must be z or w, got {space!r}")
    return str(space)


def check_figures(figure: object) -> list[str]:
    """Figure names (faces, truncation, mixing, noise, interpolation, all) -> the list to draw."""
    names = [figure] if isinstance(figure, str) else figure
    if not isinstance(names, Sequence) or not names:
        raise ConfigError(f"figure must be one of {[*FIGURES, 'all']} or a list, got {figure!r}")
    out: list[str] = []
    for name in names:
        if name == "all":
            out += [f for f in FIGURES if f not in out]
        elif name in FIGURES:
            out += [] if name in out else [name]
        else:
            raise ConfigError(f"unknown figure {name!r}; choose from {[*FIGURES, 'all']}")
    return out


def layer_psi(
    generator: Generator, psi: float | Sequence[float], resolution: int
) -> float | list[float]:
    """ψ for ``generator.truncate``: a float, or a per-layer list of ``generator.num_ws`` values.

    A list may also have ``num_ws_at(resolution)`` values (the layers the trained resolution
    uses); the unused layers above it are padded with 1.
    """
    if not isinstance(psi, Sequence):
        return float(psi)
    used = generator.num_ws_at(resolution)
    if len(psi) == generator.num_ws:
        return [float(p) for p in psi]
    if len(psi) == used:
        return [float(p) for p in psi] + [1.0] * (generator.num_ws - used)
    lengths = str(used) if used == generator.num_ws else f"{used} (or {generator.num_ws})"
    raise ConfigError(f"a per-layer psi needs {lengths} values for this generator, got {len(psi)}")


# ----------------------------------------------------------------------------------------------
# Layer ranges.


def layer_resolution(index: int) -> int:
    """Resolution of the synthesis layer fed by ``ws[:, index]``: ``4 * 2 ** (index // 2)``."""
    return 4 * 2 ** (index // 2)


def parse_layer_spec(spec: object) -> str | tuple[int, ...]:
    """Validate a layer-range spec without a generator: a name of :data:`LAYER_RANGES`, a string
    ``"a-b"`` (inclusive) or ``"a,b,c"``, or a list of layer indices. Returns the name or indices.
    """
    if isinstance(spec, str):
        text = spec.strip().lower()
        if text in LAYER_RANGES:
            return text
        if m := re.fullmatch(r"(\d+)\s*-\s*(\d+)", text):
            lo, hi = int(m[1]), int(m[2])
            if lo > hi:
                raise ConfigError(f"layer range {spec!r} is empty (start > end)")
            return tuple(range(lo, hi + 1))
        if re.fullmatch(r"\d+(\s*,\s*\d+)*", text):
            return tuple(sorted({int(t) for t in text.split(",")}))
        raise ConfigError(
            f"unknown layer range {spec!r}; use {', '.join(LAYER_RANGES)}, 'a-b', 'a,b,c' "
            "or a list of layer indices"
        )
    if _is_int(spec):
        spec = [spec]
    if isinstance(spec, Sequence) and spec and all(_is_int(i) and int(i) >= 0 for i in spec):
        return tuple(sorted({int(i) for i in spec}))
    raise ConfigError(
        f"layer range must be a name ({', '.join(LAYER_RANGES)}) or non-negative layer indices, "
        f"got {spec!r}"
    )


def layer_range(spec: object, num_ws: int) -> list[int]:
    """Layer indices of ``spec`` (see :func:`parse_layer_spec`) among ``num_ws`` layers.

    Layer i belongs to resolution ``4 * 2 ** (i // 2)``: ``coarse`` = 4-8px, ``middle`` =
    16-32px, ``fine`` = 64px and up, ``all``. Indices past ``num_ws`` (resolutions the generator
    was not trained to) are clipped; a range left empty is a ConfigError.
    """
    parsed = parse_layer_spec(spec)
    if isinstance(parsed, str):
        lo, hi = LAYER_RANGES[parsed]
        layers = [
            i
            for i in range(num_ws)
            if lo <= layer_resolution(i) and (hi is None or layer_resolution(i) <= hi)
        ]
        what = f"{parsed!r} ({lo}-{hi}px)" if hi else f"{parsed!r} ({lo}px and up)"
    else:
        layers = [i for i in parsed if i < num_ws]
        what = f"{list(parsed)}"
    if not layers:
        top = layer_resolution(num_ws - 1)
        raise ConfigError(
            f"layer range {what} is empty for a generator rendering at {top}px "
            f"(layers 0-{num_ws - 1}); pick a range at or below {top}px"
        )
    return layers


def layer_label(spec: object) -> str:
    """File-name label of a layer spec: ``coarse``, ``layers0-3``, ``layers0_2_5``."""
    parsed = parse_layer_spec(spec)
    if isinstance(parsed, str):
        return parsed
    if len(parsed) > 1 and list(parsed) == list(range(parsed[0], parsed[-1] + 1)):
        return f"layers{parsed[0]}-{parsed[-1]}"
    return "layers" + "_".join(map(str, parsed))


def noise_layer_split(num_ws: int) -> tuple[list[int], list[int]]:
    """(coarse, fine) layers for the noise figure: fine = 64px and up (paper's Fig. 5); a
    generator rendering below 64px has no such layers, so its upper half counts as fine."""
    fine = [i for i in range(num_ws) if layer_resolution(i) >= FINE_NOISE_FROM]
    if not fine:
        fine = list(range(num_ws // 2, num_ws))
    coarse = [i for i in range(num_ws) if i not in fine]
    return coarse, fine


# ----------------------------------------------------------------------------------------------
# Per-seed latents and noise.


def latents_for_seeds(seeds: Sequence[int], z_dim: int) -> Tensor:
    """z [N, z_dim] (float32, CPU): row i = the first z_dim normal draws of seed ``seeds[i]``."""
    rows = [torch.randn(1, z_dim, generator=torch.Generator().manual_seed(int(s))) for s in seeds]
    return torch.cat(rows) if rows else torch.empty(0, z_dim)


def _noise_stream(seed: int, draw: int) -> torch.Generator:
    state = np.random.SeedSequence([int(seed), int(draw)]).generate_state(1, dtype=np.uint64)[0]
    return torch.Generator().manual_seed(int(state))


def noise_modules(generator: Generator) -> list[NoiseInjection]:
    """The NoiseInjection layers in ws order (``noise_modules(generator)[i]`` is layer i's)."""
    modules: list[NoiseInjection] = []
    for r in generator.synthesis.resolutions:
        block = generator.synthesis.blocks[str(r)]
        modules += [block.epilogue0.noise, block.epilogue1.noise]
    return modules


def noise_for_seeds(
    generator: Generator,
    seeds: Sequence[int],
    *,
    resolution: int | None = None,
    draws: int | Sequence[int] = 0,
) -> list[Tensor]:
    """Per-layer noise maps [N, 1, r_i, r_i] (CPU) for the layers used at ``resolution``.

    Row n is noise draw ``draws[n]`` (or ``draws`` for all) of seed ``seeds[n]``; a layer's map
    does not depend on ``resolution`` (layers are drawn 4×4 first).
    """
    res = generator.synthesis.check_active_resolution(resolution)
    modules = noise_modules(generator)[: generator.num_ws_at(res)]
    draws = [draws] * len(seeds) if _is_int(draws) else list(draws)
    if len(draws) != len(seeds):
        raise ValueError(f"got {len(draws)} noise draws for {len(seeds)} seeds")
    per_seed = []
    for seed, draw in zip(seeds, draws, strict=True):
        gen = _noise_stream(seed, draw)
        per_seed.append(
            [torch.randn(1, 1, m.resolution, m.resolution, generator=gen) for m in modules]
        )
    return [torch.cat([maps[i] for maps in per_seed]) for i in range(len(modules))]


@contextlib.contextmanager
def _added_noise(modules: Sequence[NoiseInjection], maps: Sequence[Tensor | None]) -> Iterator:
    """While active, layer i adds ``maps[i] * strength`` (None = nothing); run with noise "none"."""

    def hook_for(noise: Tensor) -> Callable:
        def hook(module: NoiseInjection, args: tuple, output: Tensor) -> Tensor:
            strength = module.weight.to(output.dtype).view(1, -1, 1, 1)
            return output + noise.to(output.device, output.dtype) * strength

        return hook

    handles = [
        module.register_forward_hook(hook_for(noise))
        for module, noise in zip(modules, maps, strict=False)
        if noise is not None
    ]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


# ----------------------------------------------------------------------------------------------
# Rendering.


def _device_of(generator: Generator) -> torch.device:
    return next(generator.parameters()).device


@torch.no_grad()
def synthesize(
    generator: Generator,
    ws: Tensor,
    *,
    resolution: int | None = None,
    noise_mode: str = "random",
    noise_seeds: Sequence[int] | None = None,
    noise_draws: int | Sequence[int] = 0,
    noise_layers: Sequence[int] | None = None,
    row_noise_layers: Sequence[Sequence[int] | None] | None = None,
) -> Tensor:
    """ws [N, num_ws, w_dim] -> images [N, C, r, r] (float, generator's device), alpha 1.

    ``noise_mode="random"`` uses the per-seed noise of ``noise_seeds`` (one per row, required)
    and ``noise_draws``. ``noise_layers`` restricts noise (random or const) to those layer indices
    for every row (None = all layers); ``row_noise_layers`` does the same per row (one entry per
    row, None = all layers) and overrides it.
    """
    res = generator.synthesis.check_active_resolution(resolution)
    mode = check_noise_mode(noise_mode)
    ws = ws.to(_device_of(generator))
    N = ws.shape[0]
    if row_noise_layers is None and noise_layers is not None:
        row_noise_layers = [noise_layers] * N
    if row_noise_layers is not None and len(row_noise_layers) != N:
        raise ValueError(f"row_noise_layers needs {N} entries, got {len(row_noise_layers)}")
    if row_noise_layers is not None and all(r is None for r in row_noise_layers):
        row_noise_layers = None
    no_noise = row_noise_layers is not None and all(
        r is not None and len(r) == 0 for r in row_noise_layers
    )
    if mode == "none" or no_noise:
        return generator.synthesis(ws, resolution=res, noise_mode="none")
    if mode == "const" and row_noise_layers is None:
        return generator.synthesis(ws, resolution=res, noise_mode="const")
    modules = noise_modules(generator)[: generator.num_ws_at(res)]
    if mode == "const":
        maps: list[Tensor | None] = [m.noise_const.expand(N, -1, -1, -1) for m in modules]
    else:
        if noise_seeds is None or len(noise_seeds) != N:
            raise ValueError("noise_mode='random' needs one noise seed per image")
        maps = list(noise_for_seeds(generator, noise_seeds, resolution=res, draws=noise_draws))
    if row_noise_layers is not None:
        for i, noise in enumerate(maps):
            rows = [layers is None or i in layers for layers in row_noise_layers]
            if not any(rows):
                maps[i] = None
            elif not all(rows):
                keep = torch.tensor(rows, dtype=noise.dtype, device=noise.device)
                maps[i] = noise * keep.view(N, 1, 1, 1)
    with _added_noise(modules, maps):
        return generator.synthesis(ws, resolution=res, noise_mode="none")


def _pad(rows: Tensor | list, size: int) -> Tensor | list:
    """``rows`` (a tensor or list) padded to ``size`` rows by repeating its last row."""
    missing = size - len(rows)
    if missing <= 0:
        return rows
    if isinstance(rows, Tensor):
        return torch.cat([rows, rows[-1:].expand(missing, *rows.shape[1:])])
    return [*rows, *[rows[-1]] * missing]


def _chunks(count: int, batch_size: int) -> Iterator[tuple[int, int]]:
    for start in range(0, count, batch_size):
        yield start, min(start + batch_size, count)


@torch.no_grad()
def map_latents(
    generator: Generator,
    z: Tensor,
    *,
    psi: float | Sequence[float] = 1.0,
    cutoff: int | None = None,
    batch_size: int = 32,
) -> Tensor:
    """z [N, z_dim] -> truncated ws [N, num_ws, w_dim] on the generator's device.

    Every forward has exactly ``batch_size`` rows (the last chunk is padded): matmul kernels round
    differently for different batch shapes, so a fixed shape keeps each row's bits independent of
    N and of its neighbours.
    """
    device = _device_of(generator)
    out = []
    for start, stop in _chunks(z.shape[0], batch_size):
        chunk = _pad(z[start:stop].to(device), batch_size)
        ws = generator.map(chunk, truncation_psi=psi, truncation_cutoff=cutoff)
        out.append(ws[: stop - start])
    return torch.cat(out)


@torch.no_grad()
def render_ws(
    generator: Generator,
    ws: Tensor,
    *,
    resolution: int | None = None,
    noise_mode: str = "random",
    noise_seeds: Sequence[int] | None = None,
    noise_draws: int | Sequence[int] = 0,
    noise_layers: Sequence[int] | None = None,
    row_noise_layers: Sequence[Sequence[int] | None] | None = None,
    batch_size: int = 32,
) -> Tensor:
    """:func:`synthesize` in forwards of exactly ``batch_size`` rows (the last one padded, see
    :func:`map_latents`); images [N, C, r, r] float on the CPU."""
    out = []
    for start, stop in _chunks(ws.shape[0], batch_size):
        seeds = None if noise_seeds is None else _pad(list(noise_seeds[start:stop]), batch_size)
        draws = noise_draws
        if not _is_int(noise_draws):
            draws = _pad(list(noise_draws[start:stop]), batch_size)
        rows = None
        if row_noise_layers is not None:
            rows = _pad(list(row_noise_layers[start:stop]), batch_size)
        images = synthesize(
            generator,
            _pad(ws[start:stop], batch_size),
            resolution=resolution,
            noise_mode=noise_mode,
            noise_seeds=seeds,
            noise_draws=draws,
            noise_layers=noise_layers,
            row_noise_layers=rows,
        )
        out.append(images[: stop - start].float().cpu())
    return torch.cat(out)


@torch.no_grad()
def iter_images(
    generator: Generator,
    seeds: Sequence[int] | None = None,
    *,
    z: Tensor | None = None,
    psi: float | Sequence[float] = 1.0,
    cutoff: int | None = None,
    noise_mode: str = "random",
    noise_seeds: Sequence[int] | None = None,
    resolution: int | None = None,
    batch_size: int = 32,
) -> Iterator[Tensor]:
    """Yield image batches [B, C, r, r] (float CPU) for ``seeds`` (or explicit ``z``) in order.

    Latents are drawn per batch, so memory stays at one batch whatever the count. With ``z`` and
    random noise, ``noise_seeds`` (one per row) says whose noise each image gets.
    """
    if (seeds is None) == (z is None):
        raise ValueError("pass exactly one of seeds and z")
    count = len(seeds) if seeds is not None else z.shape[0]
    if seeds is not None and noise_seeds is None:
        noise_seeds = seeds
    for start, stop in _chunks(count, batch_size):
        if seeds is not None:
            batch_z = latents_for_seeds(seeds[start:stop], generator.z_dim)
        else:
            batch_z = z[start:stop]
        ws = map_latents(generator, batch_z, psi=psi, cutoff=cutoff, batch_size=batch_size)
        yield render_ws(
            generator,
            ws,
            resolution=resolution,
            noise_mode=noise_mode,
            noise_seeds=None if noise_seeds is None else noise_seeds[start:stop],
            batch_size=batch_size,
        )


def generate_images(
    generator: Generator,
    seeds: Sequence[int] | None = None,
    *,
    z: Tensor | None = None,
    psi: float | Sequence[float] = 1.0,
    cutoff: int | None = None,
    noise_mode: str = "random",
    noise_seeds: Sequence[int] | None = None,
    resolution: int | None = None,
    batch_size: int = 32,
) -> Tensor:
    """Images [N, C, r, r] (float in about [-1, 1], CPU) for ``seeds`` or ``z``; see iter_images."""
    batches = list(
        iter_images(
            generator,
            seeds,
            z=z,
            psi=psi,
            cutoff=cutoff,
            noise_mode=noise_mode,
            noise_seeds=noise_seeds,
            resolution=resolution,
            batch_size=batch_size,
        )
    )
    return torch.cat(batches)


# ----------------------------------------------------------------------------------------------
# Figures as tensors.


@torch.no_grad()
def truncation_sweep(
    generator: Generator,
    seeds: Sequence[int],
    psis: Sequence[float | Sequence[float]],
    *,
    cutoff: int | None = None,
    noise_mode: str = "random",
    resolution: int | None = None,
    batch_size: int = 32,
) -> Tensor:
    """[len(seeds) * len(psis), C, r, r]: row i = seed i rendered at every ψ (row-major).

    ψ=0 is the mean face ``w_avg`` (on the layers below ``cutoff``). A ψ may be per-layer.
    Random noise is the seed's, identical across its row.
    """
    # Map once, untruncated: [S, num_ws, w_dim]; then one truncation per ψ: P × [S, num_ws, w_dim].
    ws = map_latents(generator, latents_for_seeds(seeds, generator.z_dim), batch_size=batch_size)
    rows = [generator.truncate(ws, truncation_psi=p, truncation_cutoff=cutoff) for p in psis]
    grid_ws = torch.stack(rows, dim=1).flatten(0, 1)  # [S * P, num_ws, w_dim], seed-major
    noise_seeds = [s for s in seeds for _ in psis]
    return render_ws(
        generator,
        grid_ws,
        resolution=resolution,
        noise_mode=noise_mode,
        noise_seeds=noise_seeds,
        batch_size=batch_size,
    )


@torch.no_grad()
def style_mixing_ws(
    generator: Generator,
    sources: Sequence[int],
    destinations: Sequence[int],
    layers: Sequence[int],
    *,
    psi: float | Sequence[float] = 1.0,
    cutoff: int | None = None,
    batch_size: int = 32,
) -> tuple[Tensor, Tensor, Tensor]:
    """(ws_src [S, L, D], ws_dst [R, L, D], cells [R * S, L, D]): cell (r, s) is destination r
    with the ws of ``layers`` taken from source s (row-major: destination r, then source s)."""
    z = latents_for_seeds([*sources, *destinations], generator.z_dim)
    ws = map_latents(generator, z, psi=psi, cutoff=cutoff, batch_size=batch_size)
    ws_src, ws_dst = ws[: len(sources)], ws[len(sources) :]
    mask = torch.zeros(generator.num_ws, dtype=torch.bool, device=ws_src.device)
    mask[list(layers)] = True
    cells = torch.where(mask[None, None, :, None], ws_src[None], ws_dst[:, None])  # [R, S, L, D]
    return ws_src, ws_dst, cells.flatten(0, 1)


@torch.no_grad()
def style_mixing_grid(
    generator: Generator,
    sources: Sequence[int],
    destinations: Sequence[int],
    layers: Sequence[int],
    *,
    psi: float | Sequence[float] = 1.0,
    cutoff: int | None = None,
    noise_mode: str = "random",
    resolution: int | None = None,
    batch_size: int = 32,
) -> Tensor:
    """The paper's Fig. 3 as cells [(R + 1) * (S + 1), C, r, r], row-major, S + 1 per row.

    Top-left blank (white), top row the sources, left column the destinations, cell (r, s) the
    destination r with source s's styles on ``layers``. Rendered as one sequence (sources,
    destinations, then the cells row by row) in batches of ``batch_size``; random noise of a cell
    is its destination's.
    """
    ws_src, ws_dst, cells = style_mixing_ws(
        generator, sources, destinations, layers, psi=psi, cutoff=cutoff, batch_size=batch_size
    )
    noise_seeds = [*sources, *destinations, *(d for d in destinations for _ in sources)]
    images = render_ws(
        generator,
        torch.cat([ws_src, ws_dst, cells]),
        resolution=resolution,
        noise_mode=noise_mode,
        noise_seeds=noise_seeds,
        batch_size=batch_size,
    )
    S, R = len(sources), len(destinations)
    src, dst, mixed = images[:S], images[S : S + R], images[S + R :].unflatten(0, (R, S))
    blank = torch.full_like(images[:1], BLANK)
    rows = [torch.cat([blank, src])]
    rows += [torch.cat([dst[r : r + 1], mixed[r]]) for r in range(R)]
    return torch.cat(rows)


@torch.no_grad()
def noise_figures(
    generator: Generator,
    seed: int,
    draws: int,
    *,
    psi: float | Sequence[float] = 1.0,
    cutoff: int | None = None,
    resolution: int | None = None,
    batch_size: int = 32,
) -> dict[str, Tensor]:
    """The paper's Fig. 4 and 5 for one seed (always random per-seed noise).

    ``draws`` [draws, C, r, r]: the face under noise draws 0..draws-1 (draw 0 = the face's usual
    noise); ``std`` [r, r]: per-pixel standard deviation over the draws (mean over colour
    channels); ``layers`` [4, C, r, r]: noise on all layers / none / fine only / coarse only
    (see :func:`noise_layer_split`), all with draw 0.
    """
    res = generator.synthesis.check_active_resolution(resolution)
    z = latents_for_seeds([seed], generator.z_dim)
    ws = map_latents(generator, z, psi=psi, cutoff=cutoff, batch_size=batch_size)
    coarse, fine = noise_layer_split(generator.num_ws_at(res))
    layer_sets = [None, [], fine, coarse]  # Fig. 5: all / none / fine only / coarse only
    images = render_ws(
        generator,
        ws.expand(draws + len(layer_sets), -1, -1),
        resolution=res,
        noise_seeds=[seed] * (draws + len(layer_sets)),
        noise_draws=[*range(draws), *[0] * len(layer_sets)],
        row_noise_layers=[*[None] * draws, *layer_sets],
        batch_size=batch_size,
    )
    many, layered = images[:draws], images[draws:]
    std = many.std(dim=0).mean(dim=0)  # [r, r]
    return {"draws": many, "std": std, "layers": layered}


def slerp(a: Tensor, b: Tensor, t: float) -> Tensor:
    """Spherical interpolation between rows of a and b [N, D] (lerp when nearly parallel)."""
    a_n = a / a.norm(dim=-1, keepdim=True)
    b_n = b / b.norm(dim=-1, keepdim=True)
    omega = torch.acos((a_n * b_n).sum(dim=-1, keepdim=True).clamp(-1.0, 1.0))
    so = torch.sin(omega)
    if bool((so.abs() < 1e-6).any()):
        return torch.lerp(a, b, t)
    return (torch.sin((1.0 - t) * omega) / so) * a + (torch.sin(t * omega) / so) * b


def interpolation_steps(num_seeds: int, steps: int) -> list[tuple[int, float]]:
    """(segment, t) per frame: ``steps`` frames per segment, plus the final seed once."""
    frames = [(k, i / steps) for k in range(num_seeds - 1) for i in range(steps)]
    return [*frames, (num_seeds - 2, 1.0)]


@torch.no_grad()
def interpolation_frames(
    generator: Generator,
    seeds: Sequence[int],
    *,
    space: str = "w",
    steps: int = 30,
    psi: float | Sequence[float] = 1.0,
    cutoff: int | None = None,
    noise_mode: str = "random",
    resolution: int | None = None,
    batch_size: int = 32,
) -> Tensor:
    """Frames [(len(seeds) - 1) * steps + 1, C, r, r] along seeds[0] -> seeds[1] -> ...

    ``space="z"``: slerp between the seeds' z, then map and truncate; ``space="w"``: lerp between
    their truncated ws. Random noise is the first seed's in every frame (no flicker).
    """
    space = check_space(space)
    z = latents_for_seeds(seeds, generator.z_dim)
    path = interpolation_steps(len(seeds), steps)
    if space == "z":
        zs = torch.cat([slerp(z[k : k + 1], z[k + 1 : k + 2], t) for k, t in path])
        ws = map_latents(generator, zs, psi=psi, cutoff=cutoff, batch_size=batch_size)
    else:
        keys = map_latents(generator, z, psi=psi, cutoff=cutoff, batch_size=batch_size)
        ws = torch.cat([torch.lerp(keys[k : k + 1], keys[k + 1 : k + 2], t) for k, t in path])
    return render_ws(
        generator,
        ws,
        resolution=resolution,
        noise_mode=noise_mode,
        noise_seeds=[seeds[0]] * ws.shape[0],
        batch_size=batch_size,
    )


# ----------------------------------------------------------------------------------------------
# Writers.


def _fmt(value: float) -> str:
    return f"{float(value):g}"


def psi_label(psi: float | Sequence[float]) -> str:
    """``psi0.7``, or ``psi-perlayer`` for a per-layer list."""
    return "psi-perlayer" if isinstance(psi, Sequence) else f"psi{_fmt(psi)}"


def seeds_label(seeds: Sequence[int], *, path: bool = False) -> str:
    """``seeds0-5`` for a contiguous run, ``seeds3_7_9`` otherwise; ``path``: ``seeds0-1-2``."""
    seeds = list(seeds)
    if path:
        return "seeds" + "-".join(map(str, seeds))
    if len(seeds) == 1:
        return f"seed{seeds[0]}"
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


def _grid_nrow(count: int) -> int:
    return max(1, math.ceil(math.sqrt(count)))


def _uint8_hwc(image: Tensor) -> np.ndarray:
    """One image [C, H, W] (float [-1, 1] or uint8) -> uint8 [H, W, C] (or [H, W] for C == 1)."""
    if image.dtype != torch.uint8:
        image = to_uint8(image[None])[0]
    array = image.permute(1, 2, 0).cpu().numpy()
    return array[:, :, 0] if array.shape[2] == 1 else array


def write_faces(
    generator: Generator,
    out_dir: Path,
    *,
    seed: int,
    n: int,
    psi: float | Sequence[float] = 1.0,
    cutoff: int | None = None,
    noise_mode: str = "random",
    resolution: int | None = None,
    batch_size: int = 32,
    save_individual: bool = False,
    grid_max: int = 256,
    progress: bool | None = None,
) -> list[Path]:
    """Seeds seed..seed+n-1: ``faces_seed{seed}_n{n}_psi{psi}[...].png`` (first ``grid_max``
    images) and, with ``save_individual``, ``faces_seed..._psi.../seedNNNNNN.png`` for each.

    Streams batches, so ``n`` can be large; ``progress=None`` shows a bar on a terminal only.
    """
    suffix = _suffix(_effective_cutoff(psi, cutoff), noise_mode)
    name = f"faces_seed{seed}_n{n}_{psi_label(psi)}{suffix}"
    seeds = range(seed, seed + n)
    grid_count = min(n, max(0, grid_max))
    grid: list[Tensor] = []
    written: list[Path] = []
    bar = tqdm(
        total=n, unit="img", desc="faces", disable=None if progress is None else not progress
    )
    batches = iter_images(
        generator,
        seeds,
        psi=psi,
        cutoff=cutoff,
        noise_mode=noise_mode,
        resolution=resolution,
        batch_size=batch_size,
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
                    path = out_dir / name / f"seed{seeds[done + k]:06d}.png"
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
    generator: Generator,
    out_dir: Path,
    *,
    seeds: Sequence[int],
    psis: Sequence[float | Sequence[float]],
    cutoff: int | None = None,
    noise_mode: str = "random",
    resolution: int | None = None,
    batch_size: int = 32,
) -> list[Path]:
    """``truncation_seeds0-5_psi-1..1.png``: one row per seed, one column per ψ."""
    images = truncation_sweep(
        generator,
        seeds,
        psis,
        cutoff=cutoff,
        noise_mode=noise_mode,
        resolution=resolution,
        batch_size=batch_size,
    )
    if all(not isinstance(p, Sequence) for p in psis):
        span = f"psi{_fmt(psis[0])}..{_fmt(psis[-1])}" if len(psis) > 1 else psi_label(psis[0])
    else:
        span = f"psi-{len(psis)}values"
    name = f"truncation_{seeds_label(seeds)}_{span}{_suffix(cutoff, noise_mode)}.png"
    return [save_grid(images, out_dir / name, nrow=len(psis))]


def write_mixing(
    generator: Generator,
    out_dir: Path,
    *,
    sources: Sequence[int],
    destinations: Sequence[int],
    layers: object,
    psi: float | Sequence[float] = 1.0,
    cutoff: int | None = None,
    noise_mode: str = "random",
    resolution: int | None = None,
    batch_size: int = 32,
) -> list[Path]:
    """``mixing_<coarse|middle|fine|layersA-B>.png`` (Fig. 3 layout, see style_mixing_grid)."""
    res = generator.synthesis.check_active_resolution(resolution)
    indices = layer_range(layers, generator.num_ws_at(res))
    images = style_mixing_grid(
        generator,
        sources,
        destinations,
        indices,
        psi=psi,
        cutoff=cutoff,
        noise_mode=noise_mode,
        resolution=res,
        batch_size=batch_size,
    )
    name = f"mixing_{layer_label(layers)}.png"
    return [save_grid(images, out_dir / name, nrow=len(sources) + 1)]


def write_noise(
    generator: Generator,
    out_dir: Path,
    *,
    seed: int,
    draws: int,
    psi: float | Sequence[float] = 1.0,
    cutoff: int | None = None,
    resolution: int | None = None,
    batch_size: int = 32,
) -> list[Path]:
    """``noise_draws_seed{s}.png`` (the draws in a row), ``noise_std_seed{s}.png`` (grey, white
    = the largest std), ``noise_layers_seed{s}.png`` (all / none / fine only / coarse only)."""
    figs = noise_figures(
        generator, seed, draws, psi=psi, cutoff=cutoff, resolution=resolution, batch_size=batch_size
    )
    std = figs["std"]
    peak = float(std.max())
    gray = (
        (std / peak * 255).round().to(torch.uint8)
        if peak > 0
        else torch.zeros_like(std, dtype=torch.uint8)
    )
    if peak == 0:
        log.info("noise: the generator's noise strengths are all zero, so the std map is black")
    return [
        save_grid(figs["draws"], out_dir / f"noise_draws_seed{seed}.png", nrow=draws),
        save_png(Image.fromarray(gray.numpy(), mode="L"), out_dir / f"noise_std_seed{seed}.png"),
        save_grid(figs["layers"], out_dir / f"noise_layers_seed{seed}.png", nrow=4),
    ]


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


def write_interpolation(
    generator: Generator,
    out_dir: Path,
    *,
    seeds: Sequence[int],
    space: str = "w",
    steps: int = 30,
    fps: float = 30,
    mp4: bool = True,
    psi: float | Sequence[float] = 1.0,
    cutoff: int | None = None,
    noise_mode: str = "random",
    resolution: int | None = None,
    batch_size: int = 32,
) -> list[Path]:
    """``interp_{z|w}_seeds0-1-2.gif`` and, when imageio-ffmpeg is installed, the same ``.mp4``."""
    frames = interpolation_frames(
        generator,
        seeds,
        space=space,
        steps=steps,
        psi=psi,
        cutoff=cutoff,
        noise_mode=noise_mode,
        resolution=resolution,
        batch_size=batch_size,
    )
    frames = to_uint8(frames)
    suffix = _suffix(_effective_cutoff(psi, cutoff), noise_mode)
    name = f"interp_{space}_{seeds_label(seeds, path=True)}{suffix}"
    if not isinstance(psi, Sequence) and psi != 1:
        name += f"_{psi_label(psi)}"
    written = [save_gif(frames, out_dir / f"{name}.gif", fps=fps)]
    if mp4:
        if mp4_available():
            written.append(save_mp4(frames, out_dir / f"{name}.mp4", fps=fps))
        else:
            log.info("mp4 skipped: imageio-ffmpeg is not installed (pip install imageio-ffmpeg)")
    return written
