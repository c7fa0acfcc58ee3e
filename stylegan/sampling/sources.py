"""Faces of a figure: a seed, or a fixed latent (a projected real face) wherever a seed goes.

A figure's faces (``mixing.sources``, ``interpolation.seeds``, ``edit.seeds``, ...) are
*sources*: an ``int`` seed (its z mapped and truncated, its own per-seed noise: the contract of
:mod:`.seeds`) or a :class:`FixedLatent` (ws [num_ws, w_dim] given as they are, truncated by the
same ψ as the seeds, rendered with its own noise maps under ``noise_mode="random"``). This
module turns a list of sources into the ws and the noise arguments of
:func:`~stylegan.sampling.render.render_ws`; with seeds only, the ws are exactly the ones
:func:`~stylegan.sampling.render.map_latents` gives (same bytes as before).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from stylegan.errors import ConfigError
from stylegan.networks import Generator
from stylegan.sampling.render import map_latents
from stylegan.sampling.seeds import check_seed, latents_for_seeds

LATENT_SUFFIX = ".pt"  # a config entry ending so is a latent file, not a seed


@dataclass(frozen=True, eq=False)
class FixedLatent:
    """A face given by its ws, not by a seed (``project.py``'s output, through
    :meth:`stylegan.projection.Latent.as_source`)."""

    ws: Tensor  # [num_ws, w_dim], untruncated
    noise: tuple[Tensor, ...] | None  # one map [1, 1, r_i, r_i] per layer; None = no noise
    name: str  # for file names: the latent file's stem


Source = int | FixedLatent


def check_sources(values: Sequence[object], name: str, *, minimum: int = 1) -> list[int | str]:
    """Seeds (non-negative ints) and latent-file paths (``*.pt``) of a config list; at least
    ``minimum`` of them. Paths are read later, once the generator is known."""
    if len(values) < minimum:
        raise ConfigError(f"{name} needs at least {minimum} entries, got {list(values)!r}")
    out: list[int | str] = []
    for value in values:
        if isinstance(value, bool):
            raise ConfigError(f"{name}: {value!r} is neither a seed nor a latent file")
        if isinstance(value, int):
            out.append(check_seed(value, name))
        elif isinstance(value, str | Path) and str(value).endswith(LATENT_SUFFIX):
            out.append(str(value))
        else:
            raise ConfigError(
                f"{name}: {value!r} is neither a seed (an integer >= 0) nor a latent file "
                f"(a path ending {LATENT_SUFFIX}, written by project.py)"
            )
    return out


def source_label(source: Source) -> str:
    """``7`` for a seed, the latent's name for a fixed latent."""
    return source.name if isinstance(source, FixedLatent) else str(int(source))


@torch.no_grad()
def source_ws(
    generator: Generator,
    sources: Sequence[Source],
    *,
    psi: float | Sequence[float] = 1.0,
    cutoff: int | None = None,
    batch_size: int = 32,
) -> Tensor:
    """ws [N, num_ws, w_dim] (generator's device) of ``sources`` in order: seeds mapped and
    truncated by :func:`map_latents`, fixed latents truncated by the same ψ and cutoff."""
    device = next(generator.parameters()).device
    seeds = [s for s in sources if not isinstance(s, FixedLatent)]
    seed_ws = None
    if seeds:
        z = latents_for_seeds(seeds, generator.z_dim)
        seed_ws = map_latents(generator, z, psi=psi, cutoff=cutoff, batch_size=batch_size)
    rows, k = [], 0
    for source in sources:
        if isinstance(source, FixedLatent):
            ws = source.ws.to(device, torch.float32)[None]
            rows.append(generator.truncate(ws, truncation_psi=psi, truncation_cutoff=cutoff))
        else:
            rows.append(seed_ws[k : k + 1])
            k += 1
    if not rows:
        return torch.empty(0, generator.num_ws, generator.w_dim, device=device)
    return torch.cat(rows)


def noise_args(sources: Sequence[Source]) -> dict:
    """``render_ws`` noise arguments for one image per source: a seed's own noise, a fixed
    latent's noise maps (zeros when it has none)."""
    fixed = [isinstance(s, FixedLatent) for s in sources]
    seeds = [0 if f else int(s) for s, f in zip(sources, fixed, strict=True)]
    if not any(fixed):
        return {"noise_seeds": seeds}
    maps = [_maps(s) if f else None for s, f in zip(sources, fixed, strict=True)]
    return {"noise_seeds": seeds, "row_noise_maps": maps}


def _maps(latent: FixedLatent) -> tuple[Tensor, ...]:
    return () if latent.noise is None else latent.noise
