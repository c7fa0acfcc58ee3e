"""FID: the real statistics (cached) and the FID of a generator against them.

- :func:`real_statistics`: mean and covariance (float64) of the features of ``count`` real
  images, computed once per key (dataset fingerprint, crop, resolution, count, feature network)
  and cached on disk by :mod:`stylegan.metrics.cache`.
- :func:`compute_fid`: generated float images in [-1, 1] are quantized to uint8 exactly like real
  data (``x * 127.5 + 127.5``, rounded; :mod:`stylegan.metrics.batches`), featurized, and compared
  with the real statistics through torchmetrics (:mod:`stylegan.metrics.statistics`).

The pieces they use have their own modules: feature networks
(:mod:`~stylegan.metrics.feature_networks`), statistics and the distance
(:mod:`~stylegan.metrics.statistics`), the disk cache (:mod:`~stylegan.metrics.cache`) and the
DDP helpers (:mod:`~stylegan.metrics.distributed`).

DDP: both functions are collective — call them on every rank. ``compute_fid`` splits
``num_images`` across ranks; each rank featurizes its share and ``metric.compute()`` sum-reduces
the fake states over ranks. The real states are injected on rank 0 only (zeros elsewhere), so the
sum-reduction counts them exactly once. Every rank returns the same float. ``generate_fn`` must
draw *different* latents on each rank (seed with the rank), or the ranks featurize duplicate
images. ``real_statistics`` computes (or reads the cache) on rank 0 and broadcasts the result.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from stylegan.metrics import cache
from stylegan.metrics.batches import generated
from stylegan.metrics.distributed import dist_info
from stylegan.metrics.statistics import (
    FeatureStats,
    distance,
    feature_statistics,
    fid_metric,
    inject,
)

REAL_STATISTICS = cache.Entry("fid-real", "stylegan-fid-real-stats", "FID real statistics")


def _statistics_payload(
    batches: Iterable[Tensor], feature_net: nn.Module, *, limit: int, device: torch.device
) -> tuple[dict[str, Any], int]:
    stats = feature_statistics(batches, feature_net, limit=limit, device=device)
    return {
        "n": stats.n,
        "mu": stats.mu.double().cpu(),
        "sigma": stats.sigma.double().cpu(),
    }, stats.n


def real_statistics(images_fn: Callable[[int], Iterable[Tensor]], **options: Any) -> FeatureStats:
    """Features' mean and covariance of ``count`` real images, cached on disk; ``(mu, sigma, n)``
    as CPU float64 tensors.

    ``options`` (keyword-only): ``key``, ``count``, ``feature_name``, ``cache_dir``,
    ``batch_size``, and optionally ``device``, ``weights_path``, ``feature_net``; see
    :func:`stylegan.metrics.cache.cached`: ``images_fn(batch_size)`` yields uint8 batches and runs
    only on a cache miss; at most ``count`` images are used. Collective under DDP."""
    blob = cache.cached(REAL_STATISTICS, _statistics_payload, images_fn, **options)
    return FeatureStats(blob["mu"], blob["sigma"], int(blob["n"]))


def real_stats_cache_path(cache_dir: str | os.PathLike, **key: Any) -> Path:
    """The cache file of :func:`real_statistics` for ``key=``, ``count=``, ``feature_name=``."""
    return cache.cache_path(cache_dir, REAL_STATISTICS, **key)


def compute_fid(
    generate_fn: Callable[[int], Tensor],
    real_stats: FeatureStats | tuple[Tensor, Tensor, int],
    *,
    num_images: int,
    batch_size: int,
    feature_net: nn.Module,
    device: str | torch.device = "cpu",
) -> float:
    """FID of ``num_images`` generated images against cached real statistics.

    ``generate_fn(b)`` returns ``b`` float images in [-1, 1], ``[b, 3, R, R]`` (e.g. the EMA
    generator at ψ=1); they are quantized with :func:`~stylegan.imaging.to_uint8` (uint8 passes
    through) and featurized by ``feature_net`` (moved to ``device``). Runs under
    ``torch.no_grad``.

    Collective under DDP (see the module docstring): rank r generates its share of
    ``num_images``, torchmetrics sum-reduces the states over ranks, real statistics are injected
    on rank 0 only. Every rank returns the same value.
    """
    batches = generated(generate_fn, num_images=num_images, batch_size=batch_size, device=device)
    real_stats = FeatureStats(*real_stats)
    world, rank = dist_info()
    # No reduction in a world of one: a process group left from a finished DDP run (Lightning
    # does not destroy it) may not carry this device's tensors, as NCCL does not carry the CPU's.
    metric = fid_metric(feature_net, sync_on_compute=world > 1).to(torch.device(device))
    if rank == 0:
        inject(metric, real_stats, real=True)
    with torch.no_grad():
        for images in batches:
            metric.update(images, real=False)
    return distance(metric)
