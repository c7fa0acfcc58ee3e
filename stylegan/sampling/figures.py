"""The figures as tensors: truncation sweep, style mixing (Fig. 3), noise (Fig. 4/5), interpolation.

Owns which figures exist (:data:`FIGURES`), the values only a figure gives meaning to (the
interpolation space, the number of noise draws), and each figure's layout as float images in
[-1, 1] on the CPU. Nothing here writes a file: :mod:`stylegan.sampling.files` does.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import torch
from torch import Tensor

from stylegan.errors import ConfigError
from stylegan.networks import Generator
from stylegan.sampling.layers import noise_layer_split
from stylegan.sampling.render import map_latents, render_ws
from stylegan.sampling.seeds import latents_for_seeds
from stylegan.sampling.sources import FixedLatent, Source, noise_args, source_ws

log = logging.getLogger(__name__)

FIGURES = ("faces", "truncation", "mixing", "noise", "interpolation")
# Figures that need more than a generator (attribute directions), so not part of "all".
OPTIONAL_FIGURES = ("edit",)
BLANK = 1.0  # value of the empty top-left cell of the mixing grid (white)
MIN_NOISE_DRAWS = 2  # the std map needs at least two noise realisations
SPACES = ("z", "w")  # interpolation: slerp between zs | lerp between (truncated) ws


def check_figures(figure: object) -> list[str]:
    """Figure names (faces, truncation, mixing, noise, interpolation, all) -> the list to draw."""
    names = [figure] if isinstance(figure, str) else figure
    if not isinstance(names, Sequence) or not names:
        raise ConfigError(f"figure must be one of {[*FIGURES, 'all']} or a list, got {figure!r}")
    out: list[str] = []
    for name in names:
        if name == "all":
            out += [f for f in FIGURES if f not in out]
        elif name in FIGURES or name in OPTIONAL_FIGURES:
            out += [] if name in out else [name]
        else:
            choices = [*FIGURES, "all", *OPTIONAL_FIGURES]
            raise ConfigError(f"unknown figure {name!r}; choose from {choices}")
    return out


def check_space(space: str) -> str:
    """Interpolation space: ``z`` (slerp) or ``w`` (lerp)."""
    if space not in SPACES:
        raise ConfigError(f"interpolation.space must be z or w, got {space!r}")
    return space


def check_space_sources(space: str, faces: Sequence[object]) -> None:
    """``space=z`` needs seeds: a latent file holds ws, not a z."""
    if space == "z" and any(isinstance(f, FixedLatent | str) for f in faces):
        raise ConfigError(
            "interpolation.space=z needs seeds; a projected latent has no z: use "
            "interpolation.space=w"
        )


def check_noise_draws(draws: int) -> int:
    """Noise realisations of the noise figure: at least :data:`MIN_NOISE_DRAWS`."""
    if draws < MIN_NOISE_DRAWS:
        raise ConfigError(f"noise_figure.draws must be an integer >= 2, got {draws!r}")
    return draws


def check_steps(steps: int) -> int:
    """Interpolation frames per segment: at least 1."""
    if steps < 1:
        raise ConfigError(f"interpolation.steps must be an integer >= 1, got {steps!r}")
    return steps


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


def mix_layers(ws_src: Tensor, ws_dst: Tensor, layers: Sequence[int]) -> Tensor:
    """``ws_dst`` [..., L, D] with the ws of ``layers`` taken from ``ws_src`` (broadcast against
    it): the style-mixing cell. The explorer mixes single faces with it, the figure whole grids."""
    mask = torch.zeros(ws_dst.shape[-2], dtype=torch.bool, device=ws_dst.device)
    mask[list(layers)] = True
    return torch.where(mask[:, None], ws_src, ws_dst)


@torch.no_grad()
def style_mixing_ws(
    generator: Generator,
    sources: Sequence[Source],
    destinations: Sequence[Source],
    layers: Sequence[int],
    *,
    psi: float | Sequence[float] = 1.0,
    cutoff: int | None = None,
    batch_size: int = 32,
) -> tuple[Tensor, Tensor, Tensor]:
    """(ws_src [S, L, D], ws_dst [R, L, D], cells [R * S, L, D]): cell (r, s) is destination r
    with the ws of ``layers`` taken from source s (row-major: destination r, then source s).
    Sources and destinations are seeds or fixed latents (:mod:`.sources`)."""
    ws = source_ws(
        generator, [*sources, *destinations], psi=psi, cutoff=cutoff, batch_size=batch_size
    )
    ws_src, ws_dst = ws[: len(sources)], ws[len(sources) :]
    cells = mix_layers(ws_src[None], ws_dst[:, None], layers)  # [R, S, L, D]
    return ws_src, ws_dst, cells.flatten(0, 1)


@torch.no_grad()
def style_mixing_grid(
    generator: Generator,
    sources: Sequence[Source],
    destinations: Sequence[Source],
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
    rows = [*sources, *destinations, *(d for d in destinations for _ in sources)]
    images = render_ws(
        generator,
        torch.cat([ws_src, ws_dst, cells]),
        resolution=resolution,
        noise_mode=noise_mode,
        batch_size=batch_size,
        **noise_args(rows),
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
    seeds: Sequence[Source],
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
    their truncated ws (a seed or a fixed latent, :mod:`.sources`; ``z`` needs seeds). Random
    noise is the first face's in every frame (no flicker).
    """
    space = check_space(space)
    path = interpolation_steps(len(seeds), steps)
    if space == "z":
        check_space_sources(space, seeds)
        z = latents_for_seeds(seeds, generator.z_dim)
        zs = torch.cat([slerp(z[k : k + 1], z[k + 1 : k + 2], t) for k, t in path])
        ws = map_latents(generator, zs, psi=psi, cutoff=cutoff, batch_size=batch_size)
    else:
        keys = source_ws(generator, seeds, psi=psi, cutoff=cutoff, batch_size=batch_size)
        ws = torch.cat([torch.lerp(keys[k : k + 1], keys[k + 1 : k + 2], t) for k, t in path])
    return render_ws(
        generator,
        ws,
        resolution=resolution,
        noise_mode=noise_mode,
        batch_size=batch_size,
        **noise_args([seeds[0]] * ws.shape[0]),
    )


def std_image(std: Tensor) -> Tensor:
    """The noise figure's std map [r, r] as grey uint8, white = the largest std (black if 0)."""
    peak = float(std.max())
    if peak == 0:
        log.info("noise: the generator's noise strengths are all zero, so the std map is black")
        return torch.zeros_like(std, dtype=torch.uint8)
    return (std / peak * 255).round().to(torch.uint8)
