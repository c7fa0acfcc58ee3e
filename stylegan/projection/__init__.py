"""Projection of real faces into W / W+: find the latent that reproduces a given face.

One concern per module, each depending only on the ones above it:

- ``targets``: an image file or folder -> float [3, R, R] in [-1, 1], prepared exactly as the
  training data (crop and resize of :mod:`stylegan.data.cache`); the accepted frames.
- ``distances``: the offline distances a projection minimises (pixels, TF-Inception features,
  D's features, the attribute classifier's features, real LPIPS with a local VGG file).
- ``optimizer``: stylegan2-ada-pytorch's projector loop (lr and noise ramps, the noise
  regularisation, noise normalisation) for ``mode=w`` and ``mode=w_plus``.
- ``latents``: the latent file (save / load, generator fingerprint, the mismatch check).
- ``files``: what ``project.py`` writes per image (target | projection PNG, optional video).

The public API (used by ``project.py``, ``sample.py`` and the explorer)::

    target = load_target_image("face.jpg", resolution=64)           # [3, 64, 64] in [-1, 1]
    result = project(G, target, mode="w_plus", steps=1000, distance="inception")
    save_latent("face.pt", result.ws, result.noise, result.meta)
    latent = load_latent("face.pt", G)                                # checks w_dim / num_ws
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from stylegan.networks import Generator
from stylegan.projection.distances import (
    DISTANCES,
    Distance,
    WeightedDistance,
    build_distance,
    parse_distance,
)
from stylegan.projection.latents import (
    Latent,
    LatentError,
    check_latent,
    generator_fingerprint,
    load_latent,
    save_latent,
)
from stylegan.projection.optimizer import (
    MODES,
    Schedule,
    check_mode,
    noise_regularization,
    noise_regularization_per_face,
    normalize_noise_,
    optimize,
    render_projection,
)
from stylegan.projection.targets import TargetError, list_targets, load_target_image


@dataclass
class Projection:
    """A projected face. ``ws`` [num_ws, w_dim] (equal rows for ``mode="w"``), ``noise`` one
    [1, 1, r, r] map per layer used, ``image`` [3, R, R] the projection in about [-1, 1],
    ``distance`` the final value of the minimised distance, ``psnr`` in dB against the target
    (images in [-1, 1] mapped to [0, 1]). ``meta`` is what a latent file stores."""

    ws: Tensor
    noise: list[Tensor]
    image: Tensor
    distance: float
    psnr: float
    mode: str
    resolution: int
    history: list[float] = field(default_factory=list)  # the distance at every step
    frames: Tensor | None = None  # [F, 3, R, R] with record_every > 0 (the video)
    meta: dict[str, Any] = field(default_factory=dict)


def psnr(a: Tensor, b: Tensor) -> float:
    """PSNR in dB of images in [-1, 1] (clamped), on the [0, 1] scale: ``10 log10(1 / mse)``."""
    mse = float(((a.clamp(-1, 1) - b.clamp(-1, 1)) / 2).square().mean())
    return math.inf if mse == 0 else 10 * math.log10(1.0 / mse)


def project(
    generator: Generator,
    target: Tensor,
    *,
    mode: str = "w",
    steps: int = 1000,
    distance: Distance | object = "pixels",
    resolution: int | None = None,
    schedule: Schedule | None = None,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
    show_bar: bool = False,
    record_every: int = 0,
    fingerprint: str | None = None,
) -> Projection:
    """Project ``target`` [3, R, R] (float in [-1, 1]) into ``generator``'s W (``mode="w"``) or
    W+ (``mode="w_plus"``) with stylegan2-ada-pytorch's projector.

    ``distance``: a :class:`Distance` (from :func:`build_distance`) or a spec for it
    (``"pixels"``; ``"inception"``; ``{"inception": 1, "pixels": 0.1}``). ``resolution``: the
    generator's active resolution (default: ``R``). ``schedule``: every other hyper-parameter
    (its ``steps`` is replaced by ``steps``). ``progress(step, total)`` is called after each
    step; ``show_bar`` draws a tqdm bar; ``record_every`` > 0 keeps an image every that many
    steps (for a video). The generator is left unchanged."""
    if target.ndim != 3 or target.shape[0] != 3 or target.shape[1] != target.shape[2]:
        raise ValueError(f"target must be [3, R, R], got {list(target.shape)}")
    (result,) = project_batch(
        generator, target[None], mode=mode, steps=steps, distance=distance,
        resolution=resolution, schedule=schedule, seed=seed, progress=progress,
        show_bar=show_bar, record_every=record_every, fingerprint=fingerprint,
    )  # fmt: skip
    return result


def project_batch(
    generator: Generator,
    targets: Tensor,
    *,
    mode: str = "w",
    steps: int = 1000,
    distance: Distance | object = "pixels",
    resolution: int | None = None,
    schedule: Schedule | None = None,
    seed: int | Sequence[int] = 0,
    progress: Callable[[int, int], None] | None = None,
    show_bar: bool = False,
    record_every: int = 0,
    fingerprint: str | None = None,
) -> list[Projection]:
    """:func:`project` for the faces ``targets`` [N, 3, R, R] at once: one :class:`Projection`
    per face, each the one :func:`project` finds for that face alone with the same ``seed`` (up
    to float rounding: the faces share only the batched forward and backward passes, which is
    what makes a batch several times faster per face on a CPU). ``seed``: one for every face,
    or a list with one per face."""
    mode = check_mode(mode)
    if targets.ndim != 4 or targets.shape[1] != 3 or targets.shape[2] != targets.shape[3]:
        raise ValueError(f"targets must be [N, 3, R, R], got {list(targets.shape)}")
    res = generator.synthesis.check_active_resolution(resolution or int(targets.shape[-1]))
    if targets.shape[-1] != res:
        raise ValueError(f"target is {targets.shape[-1]}px but the generator renders {res}px")
    base = schedule or Schedule()
    sched = Schedule(**{**base.__dict__, "steps": int(steps)}).check()
    device = next(generator.parameters()).device
    if not isinstance(distance, Distance):
        distance = build_distance(distance, resolution=res, device=device)
    t = targets.to(device, torch.float32)
    prepared = distance.prepare(t)
    results = optimize(
        generator, t, distance, prepared, mode=mode, resolution=res, schedule=sched, seed=seed,
        progress=progress, show_bar=show_bar, record_every=record_every,
    )  # fmt: skip
    label = distance.label if isinstance(distance, WeightedDistance) else distance.name
    fingerprint = fingerprint or generator_fingerprint(generator)
    projections = []
    for target, result in zip(targets, results, strict=True):
        value = psnr(result.image, target.cpu())
        meta = {
            "w_dim": generator.w_dim,
            "num_ws": generator.num_ws,
            "mode": mode,
            "resolution": res,
            "generator": fingerprint,
            "distance": label,
            "final_distance": result.distance,
            "psnr": value,
            "steps": sched.steps,
            "seed": result.seed,
        }
        projections.append(Projection(
            ws=result.ws.cpu(), noise=result.noise, image=result.image, distance=result.distance,
            psnr=value, mode=mode, resolution=res, history=result.history, frames=result.frames,
            meta=meta,
        ))  # fmt: skip
    return projections


__all__ = [
    "DISTANCES",
    "MODES",
    "Distance",
    "Latent",
    "LatentError",
    "Projection",
    "Schedule",
    "TargetError",
    "WeightedDistance",
    "build_distance",
    "check_latent",
    "check_mode",
    "generator_fingerprint",
    "list_targets",
    "load_latent",
    "load_target_image",
    "noise_regularization",
    "noise_regularization_per_face",
    "normalize_noise_",
    "optimize",
    "parse_distance",
    "project",
    "project_batch",
    "psnr",
    "render_projection",
    "save_latent",
]
