"""The StyleGAN synthesis network g: W+ -> image, with progressive growing.

Owns the per-layer epilogue (noise -> bias -> LeakyReLU -> AdaIN), the 4×4 block (learned
constant), the upsampling blocks (nearest 2× up -> conv3×3 -> blur, the official
``upscale2d_conv2d`` then ``blur`` order), one toRGB per resolution and the fade-in between
resolutions. Every block up to the final resolution is built at construction from
:func:`~stylegan.networks.channels.channels_at`, so state-dict keys never change while training
grows; the active resolution and ``alpha`` are forward arguments.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from stylegan.networks.channels import (
    MIN_RESOLUTION,
    channel_table,
    check_active_resolution,
    check_resolution,
    resolutions_up_to,
)
from stylegan.networks.layers import (
    LRELU_SLOPE,
    AdaIN,
    Blur,
    EqualizedConv2d,
    NoiseInjection,
    NoiseMode,
    check_alpha,
    check_noise_mode,
    fade_in,
    upsample2d,
)


def num_ws_for(resolution: int) -> int:
    """Number of style inputs (two per resolution 4..resolution) = ``2 * log2(resolution) - 2``."""
    return 2 * (resolution.bit_length() - 1) - 2


# ----------------------------------------------------------------------------------------------
# Layers and blocks.


class LayerEpilogue(nn.Module):
    """What follows every synthesis conv: NoiseInjection -> bias -> LeakyReLU(0.2) -> AdaIN."""

    def __init__(
        self,
        *,
        channels: int,  # feature maps of the layer
        w_dim: int,  # dimensionality of w
        resolution: int,  # spatial size of the layer (for the const noise buffer)
        layer_index: int,  # index of the layer's w in ws; also seeds its const noise
    ) -> None:
        super().__init__()
        self.layer_index = layer_index
        self.noise = NoiseInjection(channels=channels, resolution=resolution, seed=layer_index)
        self.bias = nn.Parameter(torch.zeros(channels))
        self.adain = AdaIN(channels=channels, w_dim=w_dim)

    def forward(self, x: torch.Tensor, w: torch.Tensor, noise_mode: NoiseMode) -> torch.Tensor:
        # x: [N, C, H, W], w: [N, w_dim] -> [N, C, H, W]
        x = self.noise(x, noise_mode)
        x = x + self.bias.to(x.dtype).view(1, -1, 1, 1)
        x = F.leaky_relu(x, LRELU_SLOPE)
        return self.adain(x, w)


class ConstBlock(nn.Module):
    """4×4 block: learned constant -> epilogue(w0) -> conv3×3 -> epilogue(w1)."""

    def __init__(
        self,
        *,
        channels: int,  # feature maps at 4×4
        w_dim: int,  # dimensionality of w
    ) -> None:
        super().__init__()
        self.resolution = MIN_RESOLUTION
        self.const = nn.Parameter(torch.ones(1, channels, MIN_RESOLUTION, MIN_RESOLUTION))
        self.epilogue0 = LayerEpilogue(
            channels=channels, w_dim=w_dim, resolution=MIN_RESOLUTION, layer_index=0
        )
        self.conv = EqualizedConv2d(channels, channels, 3, bias=False)
        self.epilogue1 = LayerEpilogue(
            channels=channels, w_dim=w_dim, resolution=MIN_RESOLUTION, layer_index=1
        )

    def forward(self, ws: torch.Tensor, noise_mode: NoiseMode) -> torch.Tensor:
        # ws: [N, 2, w_dim] -> [N, C, 4, 4]
        x = self.const.expand(ws.shape[0], -1, -1, -1)
        x = self.epilogue0(x, ws[:, 0], noise_mode)
        x = self.conv(x)
        return self.epilogue1(x, ws[:, 1], noise_mode)


class UpBlock(nn.Module):
    """Block at resolution r > 4: up 2× -> conv3×3 -> blur -> epilogue -> conv3×3 -> epilogue."""

    def __init__(
        self,
        *,
        in_channels: int,  # feature maps at r/2
        out_channels: int,  # feature maps at r
        w_dim: int,  # dimensionality of w
        resolution: int,  # r, the output resolution
    ) -> None:
        super().__init__()
        self.resolution = resolution
        first = num_ws_for(resolution) - 2
        self.conv0 = EqualizedConv2d(in_channels, out_channels, 3, bias=False)
        self.blur = Blur()
        self.epilogue0 = LayerEpilogue(
            channels=out_channels, w_dim=w_dim, resolution=resolution, layer_index=first
        )
        self.conv1 = EqualizedConv2d(out_channels, out_channels, 3, bias=False)
        self.epilogue1 = LayerEpilogue(
            channels=out_channels, w_dim=w_dim, resolution=resolution, layer_index=first + 1
        )

    def forward(self, x: torch.Tensor, ws: torch.Tensor, noise_mode: NoiseMode) -> torch.Tensor:
        # x: [N, C_in, r/2, r/2], ws: [N, 2, w_dim] -> [N, C_out, r, r]
        x = self.blur(self.conv0(upsample2d(x)))
        x = self.epilogue0(x, ws[:, 0], noise_mode)
        x = self.conv1(x)
        return self.epilogue1(x, ws[:, 1], noise_mode)


# ----------------------------------------------------------------------------------------------
# Network.


class SynthesisNetwork(nn.Module):
    """Progressive synthesis network: ws [N, num_ws, w_dim] -> image [N, img_channels, r, r].

    Submodules: ``blocks[str(r)]`` and ``to_rgb[str(r)]`` (1×1 conv, gain 1) for every
    r in 4..resolution. Layer ``i`` of ws feeds the i-th AdaIN (two per resolution).
    """

    def __init__(
        self,
        *,
        w_dim: int = 512,  # dimensionality of w
        resolution: int = 1024,  # final output resolution (power of two, 8..1024)
        channel_base: int = 16384,  # width = min(channel_base // r, channel_max)
        channel_max: int = 512,  # maximum width
        channels: Mapping[int, int] | None = None,  # explicit {r: width}; None = use the formula
        img_channels: int = 3,  # output colour channels
    ) -> None:
        super().__init__()
        check_resolution(resolution)
        self.w_dim = w_dim
        self.resolution = resolution
        self.img_channels = img_channels
        self.resolutions = resolutions_up_to(resolution)
        self.num_ws = num_ws_for(resolution)
        self.channels = channel_table(
            resolution, channel_base=channel_base, channel_max=channel_max, channels=channels
        )
        width = self.channels.__getitem__
        self.blocks = nn.ModuleDict()
        self.to_rgb = nn.ModuleDict()
        for r in self.resolutions:
            if r == MIN_RESOLUTION:
                block: nn.Module = ConstBlock(channels=width(r), w_dim=w_dim)
            else:
                block = UpBlock(
                    in_channels=width(r // 2), out_channels=width(r), w_dim=w_dim, resolution=r
                )
            self.blocks[str(r)] = block
            self.to_rgb[str(r)] = EqualizedConv2d(width(r), img_channels, 1, gain=1.0)

    def check_active_resolution(self, resolution: int | None) -> int:
        """The active resolution (``None`` = final); ConfigError unless it is a built one."""
        return check_active_resolution(resolution, self.resolutions)

    def num_ws_at(self, resolution: int) -> int:
        """Number of ws used when synthesising at ``resolution`` (a built resolution)."""
        return num_ws_for(self.check_active_resolution(resolution))

    def adains(self) -> list[AdaIN]:
        """The AdaIN layers in ws order (``adains()[i]`` receives ``ws[:, i]``)."""
        layers: list[AdaIN] = []
        for r in self.resolutions:
            block = self.blocks[str(r)]
            layers += [block.epilogue0.adain, block.epilogue1.adain]
        return layers

    def forward(
        self,
        ws: torch.Tensor,
        *,
        resolution: int | None = None,
        alpha: float | torch.Tensor = 1.0,  # a 0-d tensor: always blended (one compiled graph)
        noise_mode: NoiseMode = "random",
    ) -> torch.Tensor:
        # ws: [N, num_ws, w_dim] -> img: [N, img_channels, resolution, resolution]
        resolution = self.check_active_resolution(resolution)
        alpha = check_alpha(alpha)
        check_noise_mode(noise_mode)
        needed = num_ws_for(resolution)
        if ws.ndim != 3 or ws.shape[1] < needed or ws.shape[2] != self.w_dim:
            raise ValueError(
                f"ws must have shape [N, >={needed}, {self.w_dim}] at resolution {resolution}, "
                f"got {list(ws.shape)}"
            )
        x = prev = None
        for i, r in enumerate(self.resolutions[: self.resolutions.index(resolution) + 1]):
            block_ws = ws[:, 2 * i : 2 * i + 2]  # [N, 2, w_dim]
            prev = x
            if r == MIN_RESOLUTION:
                x = self.blocks[str(r)](block_ws, noise_mode)  # [N, C, 4, 4]
            else:
                x = self.blocks[str(r)](x, block_ws, noise_mode)  # [N, C, r, r]
        img = self.to_rgb[str(resolution)](x)  # [N, img_channels, r, r]
        if resolution > MIN_RESOLUTION:
            img = fade_in(img, alpha, lambda: upsample2d(self.to_rgb[str(resolution // 2)](prev)))
        return img
