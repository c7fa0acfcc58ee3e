"""Feature sets for the metrics that need every feature vector, not only mean and covariance
(KID, precision and recall): the cached features of the real images and the gathered features
of generated ones, from the same feature networks as FID.

- :func:`real_features`: ``[n, D]`` float32 features of ``count`` real images, cached on disk per
  (key, count, feature network) by :mod:`stylegan.metrics.cache`, next to FID's statistics.
  FID's statistics are derived from them (:func:`~stylegan.metrics.statistics.statistics_of`),
  so one feature pass serves FID, KID and precision/recall, and a cache hit costs no feature
  extraction at all.
- :func:`generated_features`: ``[num_images, D]`` features of generated images; under DDP every
  rank featurizes its share and all ranks receive the whole set (rank-major order).

Both are collective under DDP (call them on every rank), like FID's ``real_statistics`` and
``compute_fid``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from stylegan.metrics import cache
from stylegan.metrics.batches import generated, limited
from stylegan.metrics.distributed import gathered
from stylegan.metrics.feature_networks import device_of

REAL_FEATURES = cache.Entry("real-features", "stylegan-real-features", "real features")


def features_of(
    batches: Iterable[Tensor],
    feature_net: nn.Module,
    *,
    limit: int | None = None,
    device: str | torch.device | None = None,
) -> Tensor:
    """Features ``[n, D]`` (float32, CPU) of uint8 ``batches``, at most ``limit`` images."""
    device = torch.device(device) if device is not None else device_of(feature_net)
    with torch.no_grad():
        chunks = [feature_net(b.to(device)).float().cpu() for b in limited(batches, limit)]
    if not chunks:
        raise ValueError("no images to featurize")
    return torch.cat(chunks)


def _features_payload(
    batches: Iterable[Tensor], feature_net: nn.Module, *, limit: int, device: torch.device
) -> tuple[dict[str, Any], int]:
    features = features_of(batches, feature_net, limit=limit, device=device)
    return {"features": features}, features.shape[0]


def real_features(images_fn: Callable[[int], Iterable[Tensor]], **options: Any) -> Tensor:
    """Features ``[n, D]`` (float32, CPU) of ``count`` real images, cached on disk.

    The same options and contract as :func:`stylegan.metrics.fid.real_statistics`
    (:func:`stylegan.metrics.cache.cached`). Collective under DDP."""
    return cache.cached(REAL_FEATURES, _features_payload, images_fn, **options)["features"]


def real_features_cache_path(cache_dir: str | os.PathLike, **key: Any) -> Path:
    """The cache file of :func:`real_features` for ``key=``, ``count=``, ``feature_name=``."""
    return cache.cache_path(cache_dir, REAL_FEATURES, **key)


def generated_features(
    generate_fn: Callable[[int], Tensor],
    *,
    num_images: int,
    batch_size: int,
    feature_net: nn.Module,
    device: str | torch.device = "cpu",
) -> Tensor:
    """Features ``[num_images, D]`` (float32, CPU) of generated images, on every rank.

    ``generate_fn(b)`` returns ``b`` float images in [-1, 1] (quantized as for FID). Collective
    under DDP: rank r generates its share of ``num_images`` (so ``generate_fn`` must draw
    different latents per rank) and the shares are all-gathered."""
    device = torch.device(device)
    batches = generated(generate_fn, num_images=num_images, batch_size=batch_size, device=device)
    with torch.no_grad():
        chunks = [feature_net(images).float() for images in batches]
    mine = torch.cat(chunks) if chunks else torch.zeros(0, feature_net.num_features, device=device)
    return gathered(mine).cpu()
