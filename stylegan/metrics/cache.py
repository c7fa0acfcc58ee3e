"""The disk cache of what real images give a feature network: FID's statistics, or every feature
vector (KID, precision/recall), one keyed file per entry.

An entry is identified by its kind (:class:`Entry`), ``key`` (names the real images: dataset
fingerprint, crop, resolution; :func:`stylegan.metrics.suite.real_key` builds it for training
and ``fid.py`` alike), the image ``count`` and the feature network's name. Its file,
``<prefix>-<network>-<count>-<digest>.pt`` under ``cache_dir``, holds ``format``, ``version``,
the full key and the kind's payload; it is written atomically and read with ``safe_torch_load``
(never runs code in the file). A file that does not match its key, or cannot be read, is
recomputed with one warning.

:func:`cached` is collective under DDP: rank 0 reads or computes (and writes), then broadcasts;
other ranks never touch the images.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

from stylegan.atomic import atomic_torch_save
from stylegan.checkpoints import safe_torch_load
from stylegan.metrics.distributed import computed_on_rank0
from stylegan.metrics.feature_networks import load_feature_network

log = logging.getLogger(__name__)

VERSION = 1

Key = str | Sequence[object]  # a string, or the parts of one
# (uint8 batches, feature network, *, limit, device) -> (payload, number of images used)
Compute = Callable[..., tuple[dict[str, Any], int]]


class Entry(NamedTuple):
    """One kind of cached result."""

    prefix: str  # file-name prefix
    format: str  # the file's "format" field
    what: str  # how log lines and errors name it


def full_key(key: Key, count: int, feature_name: str) -> str:
    """The key a file stores and is checked against: ``key``'s parts, count, feature network."""
    parts = [key] if isinstance(key, str) else [str(p) for p in key]
    return "|".join([*parts, f"count={count}", f"feature={feature_name}"])


def cache_path(
    cache_dir: str | os.PathLike, entry: Entry, *, key: Key, count: int, feature_name: str
) -> Path:
    """The file of one (entry, key, count, feature network)."""
    digest = hashlib.sha1(full_key(key, count, feature_name).encode()).hexdigest()[:16]
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", feature_name)
    return Path(cache_dir) / f"{entry.prefix}-{slug}-{count}-{digest}.pt"


def _load(path: Path, entry: Entry, key: str) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        blob = safe_torch_load(path, what=entry.what)  # never runs code in the file
        if (blob.get("format"), blob.get("version"), blob.get("key")) == (
            entry.format,
            VERSION,
            key,
        ):
            return blob
        log.warning("%s cache %s doesn't match its key; recomputing", entry.what, path)
    except Exception as exc:
        log.warning("%s cache %s unreadable (%s); recomputing", entry.what, path, exc)
    return None


def cached(
    entry: Entry,
    compute: Compute,
    images_fn: Callable[[int], Iterable[Tensor]],
    *,
    key: Key,
    count: int,
    feature_name: str,
    cache_dir: str | os.PathLike,
    batch_size: int,
    device: str | torch.device = "cpu",
    weights_path: str | os.PathLike | None = None,
    feature_net: nn.Module | None = None,
) -> dict[str, Any]:
    """The payload of ``count`` real images for ``entry``, from the cache or computed and cached.

    On a miss ``compute(images_fn(batch_size), net, limit=count, device=device)`` runs, with
    ``net`` = ``feature_net`` if given (it must be the network named ``feature_name``), else
    ``load_feature_network(feature_name, weights_path=..., device=...)``; ``images_fn`` yields
    uint8 ``[B, 3, R, R]`` batches and is only called on a miss. Collective under DDP (see the
    module docstring); errors on rank 0 (e.g. FeatureNetworkUnavailable) are raised on every
    rank."""
    if count < 2:
        raise ValueError(f"count must be >= 2, got {count}")
    stored_key = full_key(key, count, feature_name)
    path = cache_path(cache_dir, entry, key=key, count=count, feature_name=feature_name)

    def load_or_compute() -> dict[str, Any]:
        blob = _load(path, entry, stored_key)
        if blob is not None:
            log.info("%s: cache hit %s", entry.what, path)
            return blob
        net = feature_net
        if net is None:
            net = load_feature_network(feature_name, weights_path=weights_path, device=device)
        log.info("%s: computing %d images with %s -> %s", entry.what, count, feature_name, path)
        payload, n = compute(images_fn(batch_size), net, limit=count, device=device)
        if n < count:
            log.warning("%s: only %d of %d requested images available", entry.what, n, count)
        header = {"format": entry.format, "version": VERSION, "key": stored_key}
        atomic_torch_save({**header, **payload}, path)
        return payload

    return computed_on_rank0(load_or_compute, device)
