"""Seeds -> latents and noise: what makes every image reproducible.

Seed ``s`` owns two CPU random streams, independent of the batch size, of the device and of the
other seeds drawn with it:

- ``z`` = the first ``z_dim`` normal draws of ``torch.Generator().manual_seed(s)``;
- noise draw ``d`` (``d = 0`` for ordinary images) = one normal map per noise layer, 4×4 first,
  from a CPU generator seeded with ``numpy.random.SeedSequence([s, d])``.

:func:`added_noise` puts such maps into a generator through forward hooks on its
``NoiseInjection`` layers (the synthesis then runs with ``noise_mode="none"``), so the networks
need no change and the global torch RNG is never used. Also owns the seed values a user may ask
for (non-negative integers; one-line :class:`~stylegan.errors.ConfigError` otherwise).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from numbers import Integral

import numpy as np
import torch
from torch import Tensor

from stylegan.errors import ConfigError
from stylegan.networks import Generator
from stylegan.networks.layers import NoiseInjection


def check_seed(seed: int, name: str = "seed") -> int:
    """A seed is a non-negative integer."""
    if seed < 0:
        raise ConfigError(f"{name} must be a non-negative integer, got {seed!r}")
    return seed


def check_seeds(seeds: Sequence[int], name: str = "seeds", *, minimum: int = 1) -> list[int]:
    """A list of at least ``minimum`` non-negative seeds."""
    if len(seeds) < minimum:
        raise ConfigError(f"{name} needs at least {minimum} seed(s), got {list(seeds)!r}")
    return [check_seed(s, name) for s in seeds]


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
    draws = [draws] * len(seeds) if isinstance(draws, Integral) else list(draws)
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
def added_noise(modules: Sequence[NoiseInjection], maps: Sequence[Tensor | None]) -> Iterator:
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
