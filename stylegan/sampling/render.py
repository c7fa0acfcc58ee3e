"""Rendering in batches: ws or seeds -> images, with per-seed noise, at a fixed batch shape.

Owns the noise modes a user may ask for (``random`` | ``const`` (alias ``fixed``) | ``none``) and
the batching contract: matmul/conv kernels round differently for different batch shapes, so every
generator forward has exactly ``batch_size`` rows (the last batch is padded). A seed then gives
the same bytes whether it is drawn alone or among 64 others, in this run or the next, for a given
``batch_size`` and device (another batch size or device may move a rare pixel by one uint8
level). Images are float in [-1, 1] on the CPU, rendered at ``resolution`` with ``alpha = 1``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from numbers import Integral

import torch
from torch import Tensor

from stylegan.errors import ConfigError
from stylegan.networks import Generator, layers
from stylegan.sampling.seeds import added_noise, latents_for_seeds, noise_for_seeds, noise_modules

NOISE_ALIASES = {"fixed": "const"}


def check_noise_mode(noise_mode: object) -> str:
    """``random`` | ``const`` | ``none`` (``fixed`` is an alias of ``const``)."""
    return layers.check_noise_mode(noise_mode, key="noise", aliases=NOISE_ALIASES)


def check_batch_size(batch_size: int) -> int:
    """Rows per generator forward: at least 1."""
    if batch_size < 1:
        raise ConfigError(f"batch_size must be an integer >= 1, got {batch_size!r}")
    return batch_size


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
    row_noise_maps: Sequence[Sequence[Tensor] | None] | None = None,
) -> Tensor:
    """ws [N, num_ws, w_dim] -> images [N, C, r, r] (float, generator's device), alpha 1.

    ``noise_mode="random"`` uses the per-seed noise of ``noise_seeds`` (one per row, required)
    and ``noise_draws``; a row with ``row_noise_maps[n]`` (one map [1, 1, r_i, r_i] per layer,
    zeros past its end: a projected face's own noise) uses those maps instead.
    ``noise_layers`` restricts noise (random or const) to those layer indices for every row
    (None = all layers); ``row_noise_layers`` does the same per row (one entry per row, None =
    all layers) and overrides it.
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
        if row_noise_maps is not None:
            _use_row_maps(maps, row_noise_maps)
    if row_noise_layers is not None:
        for i, noise in enumerate(maps):
            rows = [layers is None or i in layers for layers in row_noise_layers]
            if not any(rows):
                maps[i] = None
            elif not all(rows):
                keep = torch.tensor(rows, dtype=noise.dtype, device=noise.device)
                maps[i] = noise * keep.view(N, 1, 1, 1)
    with added_noise(modules, maps):
        return generator.synthesis(ws, resolution=res, noise_mode="none")


def _use_row_maps(maps: list[Tensor], row_maps: Sequence[Sequence[Tensor] | None]) -> None:
    """Replace row n of every layer's map [N, 1, r, r] by ``row_maps[n]`` (zeros past its end)."""
    for n, given in enumerate(row_maps):
        if given is None:
            continue
        for i, layer in enumerate(maps):
            layer[n] = given[i].reshape(layer.shape[1:]) if i < len(given) else 0.0


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
    row_noise_maps: Sequence[Sequence[Tensor] | None] | None = None,
    batch_size: int = 32,
) -> Tensor:
    """:func:`synthesize` in forwards of exactly ``batch_size`` rows (the last one padded, see
    :func:`map_latents`); images [N, C, r, r] float on the CPU."""
    out = []
    for start, stop in _chunks(ws.shape[0], batch_size):
        seeds = None if noise_seeds is None else _pad(list(noise_seeds[start:stop]), batch_size)
        draws = noise_draws
        if not isinstance(noise_draws, Integral):
            draws = _pad(list(noise_draws[start:stop]), batch_size)
        rows = maps = None
        if row_noise_layers is not None:
            rows = _pad(list(row_noise_layers[start:stop]), batch_size)
        if row_noise_maps is not None:
            maps = _pad(list(row_noise_maps[start:stop]), batch_size)
        images = synthesize(
            generator,
            _pad(ws[start:stop], batch_size),
            resolution=resolution,
            noise_mode=noise_mode,
            noise_seeds=seeds,
            noise_draws=draws,
            noise_layers=noise_layers,
            row_noise_layers=rows,
            row_noise_maps=maps,
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
