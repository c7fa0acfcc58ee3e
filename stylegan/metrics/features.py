"""Feature sets for the metrics that need every feature vector, not only mean and covariance
(KID, precision and recall): the cached features of the real images and the gathered features
of generated ones, from the same feature networks as FID (:mod:`stylegan.metrics.fid`).

- :func:`real_features`: ``[n, D]`` float32 features of ``count`` real images, cached on disk per
  (key, count, feature network) next to FID's statistics cache. FID's statistics are derived from
  them (:func:`statistics_of`), so one feature pass serves FID, KID and precision/recall, and a
  cache hit costs no feature extraction at all.
- :func:`generated_features`: ``[num_images, D]`` features of generated images; under DDP every
  rank featurizes its share and all ranks receive the whole set (rank-major order).

Both are collective under DDP (call them on every rank), like FID's ``real_statistics`` and
``compute_fid``.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import torch
from torch import Tensor, nn

from stylegan.atomic import atomic_torch_save
from stylegan.checkpoints import safe_torch_load
from stylegan.imaging import to_uint8
from stylegan.metrics.fid import (
    FeatureStats,
    _check_uint8_batch,
    _device_of,
    _dist_info,
    computed_on_rank0,
    load_feature_network,
)

log = logging.getLogger(__name__)

_CACHE_FORMAT = "stylegan-real-features"
_CACHE_VERSION = 1


def statistics_of(features: Tensor) -> FeatureStats:
    """Mean and unbiased covariance (float64, CPU) of ``features [n, D]``: FID's statistics."""
    if features.ndim != 2 or features.shape[0] < 2:
        raise ValueError(f"need features [n >= 2, D], got {tuple(features.shape)}")
    f = features.detach().to("cpu", torch.float64)
    return FeatureStats(f.mean(dim=0), torch.cov(f.T), f.shape[0])


def features_of(
    batches: Iterable[Tensor],
    feature_net: nn.Module,
    *,
    limit: int | None = None,
    device: str | torch.device | None = None,
) -> Tensor:
    """Features ``[n, D]`` (float32, CPU) of uint8 ``batches``, at most ``limit`` images."""
    device = torch.device(device) if device is not None else _device_of(feature_net)
    chunks, seen = [], 0
    with torch.no_grad():
        for batch in batches:
            if limit is not None and seen >= limit:
                break
            if limit is not None:
                batch = batch[: limit - seen]
            _check_uint8_batch(batch)
            chunks.append(feature_net(batch.to(device)).float().cpu())
            seen += batch.shape[0]
    if not chunks:
        raise ValueError("no images to featurize")
    return torch.cat(chunks)


# --------------------------------------------------------------------------------------------
# Real features, cached
# --------------------------------------------------------------------------------------------


def _full_key(key: str | Sequence[object], count: int, feature_name: str) -> str:
    parts = [key] if isinstance(key, str) else [str(p) for p in key]
    return "|".join([*parts, f"count={count}", f"feature={feature_name}"])


def real_features_cache_path(
    cache_dir: str | os.PathLike, *, key: str | Sequence[object], count: int, feature_name: str
) -> Path:
    """Cache file of the real features for one (key, count, feature network)."""
    digest = hashlib.sha1(_full_key(key, count, feature_name).encode()).hexdigest()[:16]
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", feature_name)
    return Path(cache_dir) / f"real-features-{slug}-{count}-{digest}.pt"


def _load(path: Path, full_key: str) -> Tensor | None:
    if not path.is_file():
        return None
    try:
        blob = safe_torch_load(path, what="real features")  # never runs code in the file
        if (blob.get("format"), blob.get("version"), blob.get("key")) == (
            _CACHE_FORMAT,
            _CACHE_VERSION,
            full_key,
        ):
            return blob["features"]
        log.warning("real-features cache %s doesn't match its key; recomputing", path)
    except Exception as exc:
        log.warning("real-features cache %s unreadable (%s); recomputing", path, exc)
    return None


def _load_or_compute(
    images_fn, *, key, count, feature_name, cache_dir, batch_size, device, weights_path, feature_net
) -> Tensor:
    full_key = _full_key(key, count, feature_name)
    path = real_features_cache_path(cache_dir, key=key, count=count, feature_name=feature_name)
    cached = _load(path, full_key)
    if cached is not None:
        log.info("real features: cache hit %s", path)
        return cached
    if feature_net is None:
        feature_net = load_feature_network(feature_name, weights_path=weights_path, device=device)
    log.info("real features: computing %d images with %s -> %s", count, feature_name, path)
    features = features_of(images_fn(batch_size), feature_net, limit=count, device=device)
    if features.shape[0] < count:
        log.warning("real features: only %d of %d requested images", features.shape[0], count)
    path.parent.mkdir(parents=True, exist_ok=True)
    blob = {"format": _CACHE_FORMAT, "version": _CACHE_VERSION, "key": full_key}
    atomic_torch_save({**blob, "features": features}, path)
    return features


def real_features(
    images_fn: Callable[[int], Iterable[Tensor]],
    *,
    key: str | Sequence[object],
    count: int,
    feature_name: str,
    cache_dir: str | os.PathLike,
    batch_size: int,
    device: str | torch.device = "cpu",
    weights_path: str | os.PathLike | None = None,
    feature_net: nn.Module | None = None,
) -> Tensor:
    """Features ``[n, D]`` (float32, CPU) of ``count`` real images, cached on disk.

    Same contract as :func:`stylegan.metrics.fid.real_statistics`: ``images_fn(batch_size)``
    yields uint8 batches and runs only on a cache miss; ``key`` names the images; the write is
    atomic. Collective under DDP: rank 0 reads or computes, then broadcasts."""
    if count < 2:
        raise ValueError(f"count must be >= 2, got {count}")
    kwargs = dict(
        key=key,
        count=count,
        feature_name=feature_name,
        cache_dir=cache_dir,
        batch_size=batch_size,
        device=device,
        weights_path=weights_path,
        feature_net=feature_net,
    )
    return computed_on_rank0(lambda: _load_or_compute(images_fn, **kwargs), device)


# --------------------------------------------------------------------------------------------
# Generated features, gathered
# --------------------------------------------------------------------------------------------


def generated_features(
    generate_fn: Callable[[int], Tensor],
    *,
    num_images: int,
    batch_size: int,
    feature_net: nn.Module,
    device: str | torch.device = "cpu",
) -> Tensor:
    """Features ``[num_images, D]`` (float32, CPU) of generated images, on every rank.

    ``generate_fn(b)`` returns ``b`` float images in [-1, 1] (quantized with :func:`to_uint8`, as
    for FID). Collective under DDP: rank r generates its share of ``num_images`` (so
    ``generate_fn`` must draw different latents per rank) and the shares are all-gathered."""
    if num_images < 2:
        raise ValueError(f"num_images must be >= 2, got {num_images}")
    device = torch.device(device)
    world, rank = _dist_info()
    local = num_images // world + (1 if rank < num_images % world else 0)
    chunks, done = [], 0
    with torch.no_grad():
        while done < local:
            b = min(batch_size, local - done)
            images = generate_fn(b)
            if images.ndim != 4 or images.shape[0] != b or images.shape[1] != 3:
                raise ValueError(
                    f"generate_fn({b}) must return [{b}, 3, R, R], got {tuple(images.shape)}"
                )
            chunks.append(feature_net(to_uint8(images.to(device))).float())
            done += b
    mine = torch.cat(chunks) if chunks else torch.zeros(0, feature_net.num_features, device=device)
    if world == 1:
        return mine.cpu()
    from torchmetrics.utilities.distributed import gather_all_tensors

    return torch.cat(gather_all_tensors(mine)).cpu()
