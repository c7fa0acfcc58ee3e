"""The style-based generator: mapping + synthesis + w_avg, truncation and style mixing.

Owns :class:`Generator` (the public G of the contract in ``docs/architecture.md``): broadcasting
w to the per-layer ws, the running average ``w_avg`` (EMA with ``w_avg_beta``), the truncation
trick (per-layer psi and cutoff) with the range a user may ask for (:func:`check_psi`,
:func:`check_cutoff`), the rebuildable ``config`` dict, and :func:`mix_styles`, the crossover
helper used by style-mixing regularisation and the mixing figures.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from numbers import Integral, Real
from typing import Any

import torch
from torch import nn

from stylegan.errors import ConfigError
from stylegan.networks.channels import check_resolution, normalize_channels
from stylegan.networks.layers import NoiseMode
from stylegan.networks.mapping import MappingNetwork
from stylegan.networks.synthesis import SynthesisNetwork

PSI_LIMIT = 2.0  # |ψ| above this extrapolates far outside the learned distribution

# ----------------------------------------------------------------------------------------------
# Truncation values a user may ask for (one-line ConfigErrors naming the command-line key).


def _check_psi_value(value: object, name: str) -> float:
    if not isinstance(value, Real) or isinstance(value, bool) or not math.isfinite(value):
        raise ConfigError(
            f"{name} must be a number in [-{PSI_LIMIT:g}, {PSI_LIMIT:g}], got {value!r}"
        )
    if abs(float(value)) > PSI_LIMIT:
        raise ConfigError(
            f"{name}={value!r} is out of range: |ψ| must be <= {PSI_LIMIT:g} "
            "(1 = no truncation, 0 = the mean face, 0.7 is typical)"
        )
    return float(value)


def check_psi(psi: object, name: str = "psi") -> float | list[float]:
    """ψ: a number in [-PSI_LIMIT, PSI_LIMIT], or a non-empty list of them (one per layer).

    A config cannot type "a number or a list", so this check owns ψ's type as well as its range.
    """
    if isinstance(psi, Sequence) and not isinstance(psi, (str, bytes)):
        if not psi:
            raise ConfigError(f"{name} must be a number or a non-empty per-layer list, got []")
        return [_check_psi_value(p, name) for p in psi]
    return _check_psi_value(psi, name)


def check_cutoff(cutoff: int | None, name: str = "cutoff") -> int | None:
    """Truncation cutoff: ``None`` (every layer) or an integer >= 0 (layers < cutoff)."""
    if cutoff is not None and cutoff < 0:
        raise ConfigError(f"{name} must be null or a non-negative integer, got {cutoff!r}")
    return cutoff


# ----------------------------------------------------------------------------------------------
# Style mixing.


def mix_styles(ws1: torch.Tensor, ws2: torch.Tensor, crossover: int | torch.Tensor) -> torch.Tensor:
    """Layers ``< crossover`` from ws1, the rest from ws2.

    ws1, ws2: [N, num_ws, w_dim]; crossover: an int for the whole batch or an integer tensor [N]
    (one crossover per sample). Returns [N, num_ws, w_dim].
    """
    if ws1.shape != ws2.shape or ws1.ndim != 3:
        raise ValueError(
            f"ws1 and ws2 must both be [N, num_ws, w_dim], got {list(ws1.shape)} "
            f"and {list(ws2.shape)}"
        )
    N, num_ws, _ = ws1.shape
    layer_idx = torch.arange(num_ws, device=ws1.device)
    if isinstance(crossover, torch.Tensor):
        if crossover.ndim == 0:
            crossover = crossover.reshape(1)
        if crossover.ndim != 1 or crossover.shape[0] not in (1, N):
            raise ValueError(
                f"crossover tensor must have shape [N]={[N]}, got {list(crossover.shape)}"
            )
        mask = layer_idx[None, :] < crossover.to(ws1.device)[:, None]  # [N, num_ws]
    else:
        mask = (layer_idx < int(crossover))[None, :]  # [1, num_ws]
    return torch.where(mask[:, :, None], ws1, ws2)


# ----------------------------------------------------------------------------------------------
# Generator.


class Generator(nn.Module):
    """StyleGAN generator: z [N, z_dim] -> image [N, img_channels, r, r] in [-1, 1] (unclamped)."""

    def __init__(
        self,
        *,
        resolution: int,  # final output resolution (power of two, 8..1024)
        z_dim: int = 512,  # dimensionality of the input latent z
        w_dim: int = 512,  # dimensionality of the intermediate latent w
        mapping_layers: int = 8,  # fully-connected layers in the mapping network
        mapping_lr_mul: float = 0.01,  # learning-rate multiplier of the mapping network
        channel_base: int = 16384,  # width at resolution r = min(channel_base // r, channel_max)
        channel_max: int = 512,  # maximum width
        channels: Mapping[int, int] | None = None,  # explicit {r: width}; None = the formula
        img_channels: int = 3,  # output colour channels
        w_avg_beta: float = 0.995,  # EMA decay of w_avg (per update_w_avg call)
    ) -> None:
        super().__init__()
        check_resolution(resolution)
        if not 0.0 <= w_avg_beta <= 1.0:
            raise ConfigError(f"w_avg_beta must be in [0, 1], got {w_avg_beta!r}")
        sizes = {"z_dim": z_dim, "w_dim": w_dim, "mapping_layers": mapping_layers}
        sizes.update(channel_base=channel_base, channel_max=channel_max, img_channels=img_channels)
        for name, value in sizes.items():
            if int(value) < 1:
                raise ConfigError(f"{name} must be a positive integer, got {value!r}")
        self._config: dict[str, Any] = {
            "resolution": int(resolution),
            "z_dim": int(z_dim),
            "w_dim": int(w_dim),
            "mapping_layers": int(mapping_layers),
            "mapping_lr_mul": float(mapping_lr_mul),
            "channel_base": int(channel_base),
            "channel_max": int(channel_max),
            "channels": normalize_channels(channels),
            "img_channels": int(img_channels),
            "w_avg_beta": float(w_avg_beta),
        }
        self.resolution = resolution
        self.z_dim = z_dim
        self.w_dim = w_dim
        self.img_channels = img_channels
        self.w_avg_beta = w_avg_beta
        self.mapping = MappingNetwork(
            z_dim=z_dim, w_dim=w_dim, num_layers=mapping_layers, lr_mul=mapping_lr_mul
        )
        self.synthesis = SynthesisNetwork(
            w_dim=w_dim,
            resolution=resolution,
            channel_base=channel_base,
            channel_max=channel_max,
            channels=channels,
            img_channels=img_channels,
        )
        self.num_ws = self.synthesis.num_ws
        self.resolutions = self.synthesis.resolutions
        self.register_buffer("w_avg", torch.zeros(w_dim))  # [w_dim]

    @property
    def config(self) -> dict[str, Any]:
        """Constructor kwargs as plain python types: ``Generator(**g.config)`` rebuilds g."""
        config = dict(self._config)
        if config["channels"] is not None:
            config["channels"] = dict(config["channels"])
        return config

    def num_ws_at(self, resolution: int) -> int:
        """Number of ws the synthesis uses at a (built) ``resolution``: ``2 * log2(r) - 2``."""
        return self.synthesis.num_ws_at(resolution)

    def _psi_coefficients(
        self, truncation_psi: float | Sequence[float] | torch.Tensor, like: torch.Tensor
    ) -> torch.Tensor:
        """Per-layer psi as a tensor [num_ws] with the dtype/device of ``like``."""
        if not isinstance(truncation_psi, (torch.Tensor, int, float)):
            truncation_psi = [float(p) for p in truncation_psi]  # list, tuple, ListConfig, ...
        psi = torch.as_tensor(truncation_psi, dtype=like.dtype, device=like.device)
        if psi.ndim == 0:
            return psi.expand(self.num_ws)
        if psi.ndim != 1 or psi.shape[0] != self.num_ws:
            raise ConfigError(
                f"truncation_psi must be a float or {self.num_ws} per-layer values, "
                f"got shape {list(psi.shape)}"
            )
        return psi

    def truncate(
        self,
        ws: torch.Tensor,
        *,
        truncation_psi: float | Sequence[float] | torch.Tensor = 1.0,
        truncation_cutoff: int | None = None,
    ) -> torch.Tensor:
        """Truncation trick: ``ws[:, i] = lerp(w_avg, ws[:, i], psi_i)`` for layers i < cutoff.

        ``truncation_cutoff=None`` truncates every layer. Layers with psi_i == 1 or i >= cutoff are
        returned bit-exactly unchanged. ws: [N, num_ws, w_dim] -> [N, num_ws, w_dim].
        """
        if truncation_cutoff is not None and (
            isinstance(truncation_cutoff, bool) or not isinstance(truncation_cutoff, Integral)
        ):
            raise ConfigError(
                f"truncation_cutoff must be an int or None, got {truncation_cutoff!r}"
            )
        if ws.ndim != 3 or ws.shape[1] != self.num_ws:
            raise ValueError(f"ws must be [N, {self.num_ws}, w_dim], got {list(ws.shape)}")
        if isinstance(truncation_psi, (int, float)) and truncation_psi == 1:
            return ws
        psi = self._psi_coefficients(truncation_psi, ws)  # [num_ws]
        cutoff = self.num_ws if truncation_cutoff is None else int(truncation_cutoff)
        layer_idx = torch.arange(self.num_ws, device=ws.device)
        active = (layer_idx < cutoff) & (psi != 1)  # [num_ws]
        w_avg = self.w_avg.to(ws.dtype)
        truncated = torch.lerp(w_avg, ws, psi[None, :, None])
        return torch.where(active[None, :, None], truncated, ws)

    def map(
        self,
        z: torch.Tensor,
        *,
        truncation_psi: float | Sequence[float] | torch.Tensor = 1.0,
        truncation_cutoff: int | None = None,
        update_w_avg: bool = False,
    ) -> torch.Tensor:
        """z [N, z_dim] -> ws [N, num_ws, w_dim] (broadcast, optional w_avg update, truncation)."""
        w = self.mapping(z)  # [N, w_dim]
        if update_w_avg:
            with torch.no_grad():
                batch_mean = w.detach().mean(dim=0).to(self.w_avg.dtype)
                self.w_avg.copy_(torch.lerp(batch_mean, self.w_avg, self.w_avg_beta))
        ws = w[:, None, :].repeat(1, self.num_ws, 1)  # [N, num_ws, w_dim]
        return self.truncate(ws, truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff)

    def forward(
        self,
        z: torch.Tensor,
        *,
        resolution: int | None = None,
        alpha: float = 1.0,
        truncation_psi: float | Sequence[float] | torch.Tensor = 1.0,
        truncation_cutoff: int | None = None,
        noise_mode: NoiseMode = "random",
        update_w_avg: bool = False,
    ) -> torch.Tensor:
        # z: [N, z_dim] -> img: [N, img_channels, resolution, resolution]
        self.synthesis.check_active_resolution(resolution)
        ws = self.map(
            z,
            truncation_psi=truncation_psi,
            truncation_cutoff=truncation_cutoff,
            update_w_avg=update_w_avg,
        )
        return self.synthesis(ws, resolution=resolution, alpha=alpha, noise_mode=noise_mode)
