"""Perceptual path length (Karras et al. 2019, Section 4.1): how much the image changes, measured
by LPIPS, for a small step ``epsilon`` along an interpolation between two latents::

    PPL = E[ LPIPS(G(lerp_or_slerp(a, b, t)), G(lerp_or_slerp(a, b, t + epsilon))) / epsilon² ]

- ``space="z"``: slerp between two latents z, then the mapping network; ``space="w"``: lerp
  between their mapped w (the paper's Table 3/4 report both).
- ``sampling="full"``: t ~ U(0, 1); ``sampling="end"``: t = 0, the path's end point (NVlabs'
  stylegan2-ada; by symmetry the same as the paper's t ∈ {0, 1}).
- As in the paper and stylegan2-ada: the same noise for both images of a pair (``noise_mode=
  "const"``), the face crop (rows 3/8..7/8, columns 2/8..6/8) before the distance, images larger
  than 256 px box-filtered down to 256, and the mean taken over the distances between the 1st and
  99th percentile.

The distance is torchmetrics' LPIPS (:class:`torchmetrics.functional.image.lpips._LPIPS`, VGG-16
variant). Its linear layers ship inside torchmetrics; the VGG-16 backbone (torchvision's
``vgg16-397923af.pth``, ImageNet) is **never downloaded here**: :func:`load_lpips` reads it from
``weights_path`` (the file, or a folder holding it; default: torch hub's checkpoint folder) and
raises :class:`PerceptualNetworkUnavailable` with one line when it is missing.
:class:`TinyPerceptualNet` is a fixed-seed stand-in **for tests only**.

:func:`perceptual_path_length` is collective under DDP: each rank draws its share of pairs (seed
with the rank) and the distances are gathered, so every rank returns the same value.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from stylegan.errors import UserError

VGG16_FILE = "vgg16-397923af.pth"  # torchvision's ImageNet VGG-16, what LPIPS (vgg) builds on
VGG16_URL = f"https://download.pytorch.org/models/{VGG16_FILE}"
SPACES = ("z", "w")
SAMPLINGS = ("full", "end")


class PerceptualNetworkUnavailable(UserError, RuntimeError):  # noqa: N818 (name is the API)
    """LPIPS can't be built (backbone weights missing or unreadable); the message is one line."""


class PPLResult(NamedTuple):
    ppl: float  # mean of the distances between the 1st and 99th percentile
    space: str
    sampling: str
    num_samples: int


# --------------------------------------------------------------------------------------------
# Distance networks
# --------------------------------------------------------------------------------------------


class TinyPerceptualNet(nn.Module):
    """FOR TESTS ONLY: an LPIPS-shaped distance with a fixed-seed random two-layer conv backbone.

    ``forward(a, b) -> [N]`` on images in [-1, 1]: per layer, unit-normalize the channels,
    square the difference, average over channels and positions; sum over layers."""

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.conv2 = nn.Conv2d(8, 8, 3, stride=2, padding=1)
        gen = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for conv in (self.conv1, self.conv2):
                fan_in = conv.in_channels * 9
                conv.weight.copy_(torch.randn(conv.weight.shape, generator=gen) / fan_in**0.5)
                conv.bias.zero_()
        self.requires_grad_(False)
        self.eval()

    def _features(self, x: Tensor) -> list[Tensor]:
        h1 = F.leaky_relu(self.conv1(x), 0.2)
        h2 = F.leaky_relu(self.conv2(h1), 0.2)
        return [h1, h2]

    def forward(self, a: Tensor, b: Tensor) -> Tensor:
        total = torch.zeros(a.shape[0], device=a.device)
        for fa, fb in zip(self._features(a), self._features(b), strict=True):
            fa = fa / (fa.norm(dim=1, keepdim=True) + 1e-8)
            fb = fb / (fb.norm(dim=1, keepdim=True) + 1e-8)
            total = total + (fa - fb).square().sum(dim=1).mean(dim=(1, 2))
        return total


class _LPIPSDistance(nn.Module):
    """torchmetrics' LPIPS as ``forward(a, b) -> [N]`` on images in [-1, 1]. VGG-16's four
    poolings need at least 32 px: smaller images (the crop of an 8-32 px stage) are upsampled
    to ``min_size`` (64, torchmetrics' PPL default ``resize``)."""

    min_size = 64

    def __init__(self, lpips: nn.Module) -> None:
        super().__init__()
        self.lpips = lpips

    def forward(self, a: Tensor, b: Tensor) -> Tensor:
        if min(a.shape[-2:]) < self.min_size:
            size = (self.min_size, self.min_size)
            a = F.interpolate(a, size=size, mode="bilinear", align_corners=False)
            b = F.interpolate(b, size=size, mode="bilinear", align_corners=False)
        return self.lpips(a, b).reshape(a.shape[0])


def _vgg16_path(weights_path: str | os.PathLike | None) -> Path:
    if weights_path is None:
        return Path(torch.hub.get_dir()) / "checkpoints" / VGG16_FILE
    path = Path(weights_path)
    return path / VGG16_FILE if path.is_dir() else path


def load_lpips(
    weights_path: str | os.PathLike | None = None, *, device: str | torch.device = "cpu"
) -> nn.Module:
    """LPIPS (VGG-16) as a distance module ``(a, b) -> [N]``, without any download.

    ``weights_path``: torchvision's ``vgg16-397923af.pth``, or a folder that holds it; None =
    torch hub's checkpoint folder (``$TORCH_HOME/hub/checkpoints``), where torchvision itself
    would have saved it. Raises :class:`PerceptualNetworkUnavailable` when it is missing."""
    path = _vgg16_path(weights_path)
    if not path.is_file():
        raise PerceptualNetworkUnavailable(
            f"PPL needs LPIPS' VGG-16 weights, not found at {path}: download {VGG16_URL} on a "
            f"machine with network and pass ppl weights_path=<that file or its folder>"
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        features = {k[len("features.") :]: v for k, v in state.items() if k.startswith("features.")}
        from torchmetrics.functional.image.lpips import _LPIPS

        lpips = _LPIPS(pretrained=True, net="vgg", pnet_rand=True)  # shipped linear layers
        # torchmetrics splits torchvision's `features` into slice1..5 keeping the layer indices.
        backbone = {}
        for name, _ in lpips.net.named_parameters():
            _, index, kind = name.split(".")
            backbone[name] = features[f"{index}.{kind}"]
        lpips.net.load_state_dict(backbone, strict=True)
    except Exception as exc:
        raise PerceptualNetworkUnavailable(
            f"PPL can't load LPIPS' VGG-16 weights from {path} ({type(exc).__name__}: "
            f"{' '.join(str(exc).split())[:200]}); expected torchvision's {VGG16_FILE}"
        ) from exc
    lpips.eval().requires_grad_(False)
    return _LPIPSDistance(lpips).to(device)


# --------------------------------------------------------------------------------------------
# Path length
# --------------------------------------------------------------------------------------------


def slerp(a: Tensor, b: Tensor, t: Tensor) -> Tensor:
    """Spherical interpolation of ``a``, ``b`` ``[N, D]`` at ``t [N]`` (on the unit sphere, as the
    official code: the result is normalized)."""
    a = a / a.norm(dim=-1, keepdim=True)
    b = b / b.norm(dim=-1, keepdim=True)
    d = (a * b).sum(dim=-1, keepdim=True).clamp(-1.0, 1.0)
    p = t.unsqueeze(-1) * torch.acos(d)
    c = b - d * a
    c = c / c.norm(dim=-1, keepdim=True)
    out = a * torch.cos(p) + c * torch.sin(p)
    return out / out.norm(dim=-1, keepdim=True)


def _face_crop_and_downsample(img: Tensor, crop: bool) -> Tensor:
    if crop:
        c = img.shape[2] // 8
        img = img[:, :, c * 3 : c * 7, c * 2 : c * 6]
    factor = img.shape[2] // 256
    if factor > 1:
        img = F.avg_pool2d(img, factor)
    return img


@torch.no_grad()
def _pair_distances(
    G: Any,
    distance: nn.Module,
    t: Tensor,
    z: Tensor,
    *,
    space: str,
    epsilon: float,
    resolution: int | None,
    alpha: float,
    crop: bool,
) -> Tensor:
    """Distances / epsilon² of the pairs at ``t [n]`` on the paths between ``z.chunk(2)``."""
    n = t.shape[0]
    z0, z1 = z.chunk(2)
    if space == "w":
        w0, w1 = G.mapping(z).chunk(2)  # [n, w_dim] each
        wt0 = torch.lerp(w0, w1, t.unsqueeze(1))
        wt1 = torch.lerp(w0, w1, (t + epsilon).unsqueeze(1))
    else:
        zt0 = slerp(z0, z1, t)
        zt1 = slerp(z0, z1, t + epsilon)
        wt0, wt1 = G.mapping(torch.cat([zt0, zt1])).chunk(2)
    w = torch.cat([wt0, wt1])  # [2n, w_dim]
    ws = w.unsqueeze(1).expand(-1, G.num_ws, -1)  # [2n, num_ws, w_dim]
    img = G.synthesis(ws, resolution=resolution, alpha=alpha, noise_mode="const").float()
    img = _face_crop_and_downsample(img, crop)
    img0, img1 = img.chunk(2)
    return distance(img0, img1).float().reshape(n) / epsilon**2


def perceptual_path_length(
    G: Any,
    distance: nn.Module,
    *,
    space: str = "w",  # z (slerp before the mapping) | w (lerp after it)
    sampling: str = "end",  # full (t ~ U(0,1)) | end (t = 0)
    num_samples: int = 10_000,  # pairs (the paper uses 100,000)
    epsilon: float = 1e-4,  # step along the path (paper: 1e-4)
    batch_size: int = 16,  # pairs per generator call
    resolution: int | None = None,  # render at this stage (None = G's final resolution)
    alpha: float = 1.0,  # fade-in of that stage
    crop: bool = True,  # the paper's face crop before the distance
    seed: int = 0,  # latents and t; under DDP rank r uses seed + 1_000_003 * r
    device: str | torch.device = "cpu",
) -> PPLResult:
    """PPL of generator ``G`` (``z_dim``, ``num_ws``, ``mapping(z)``, ``synthesis(ws,
    resolution=, alpha=, noise_mode=)``) with ``distance(a, b) -> [N]`` on images in [-1, 1]
    (:func:`load_lpips`, or a stand-in). Collective under DDP."""
    if space not in SPACES or sampling not in SAMPLINGS:
        raise ValueError(
            f"PPL space must be one of {SPACES} and sampling one of {SAMPLINGS}, "
            f"got space={space!r} sampling={sampling!r}"
        )
    if num_samples < 2 or epsilon <= 0 or batch_size < 1:
        raise ValueError(
            f"PPL needs num_samples >= 2, epsilon > 0 and batch_size >= 1, got {num_samples}, "
            f"{epsilon}, {batch_size}"
        )
    device = torch.device(device)
    world, rank = 1, 0
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        world, rank = torch.distributed.get_world_size(), torch.distributed.get_rank()
    local = num_samples // world + (1 if rank < num_samples % world else 0)
    # All draws up front (t, then both endpoints), so the batch size doesn't change the value.
    gen = torch.Generator().manual_seed(seed + 1_000_003 * rank)
    t = torch.rand(local, generator=gen) * (1.0 if sampling == "full" else 0.0)
    z0, z1 = torch.randn(2 * local, G.z_dim, generator=gen).chunk(2)
    chunks = []
    for start in range(0, local, batch_size):
        sl = slice(start, start + batch_size)
        z = torch.cat([z0[sl], z1[sl]]).to(device)
        chunks.append(
            _pair_distances(
                G,
                distance,
                t[sl].to(device),
                z,
                space=space,
                epsilon=epsilon,
                resolution=resolution,
                alpha=alpha,
                crop=crop,
            ).cpu()
        )
    dist = torch.cat(chunks) if chunks else torch.zeros(0)
    if world > 1:
        from torchmetrics.utilities.distributed import gather_all_tensors

        dist = torch.cat(gather_all_tensors(dist.to(device))).cpu()
    return PPLResult(filtered_mean(dist), space, sampling, int(dist.numel()))


def filtered_mean(distances: Tensor) -> float:
    """Mean of the distances between the 1st ("lower") and 99th ("higher") percentile, as NVlabs'
    ``np.percentile(..., interpolation='lower'/'higher')``: outliers are dropped."""
    d = distances.double().flatten()
    lo = torch.quantile(d, 0.01, interpolation="lower")
    hi = torch.quantile(d, 0.99, interpolation="higher")
    return float(d[(d >= lo) & (d <= hi)].mean())
