"""The progressive StyleGAN discriminator (official ``D_basic``).

Owns :class:`Discriminator`: one fromRGB (1×1 conv + LeakyReLU) per resolution, a downsampling
block per resolution r > 4 (conv3×3 -> LeakyReLU -> blur -> conv3×3 -> 2×2 average down ->
LeakyReLU), the 4×4 output block (minibatch stddev -> conv3×3 -> dense -> dense -> logit) and
the fade-in of a new resolution. All blocks up to the final resolution are built at
construction from :func:`~stylegan.networks.channels.channels_at` (the same widths as G).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from stylegan.networks.channels import (
    MIN_RESOLUTION,
    channel_table,
    check_active_resolution,
    check_resolution,
    normalize_channels,
    resolutions_up_to,
)
from stylegan.networks.layers import (
    LRELU_SLOPE,
    Blur,
    EqualizedConv2d,
    EqualizedLinear,
    MinibatchStdDev,
    check_alpha,
    downsample2d,
    fade_in,
)

# ----------------------------------------------------------------------------------------------
# Blocks.


class FromRGB(nn.Module):
    """1×1 equalized conv from image channels to features, then LeakyReLU(0.2)."""

    def __init__(
        self,
        *,
        img_channels: int,  # input colour channels
        out_channels: int,  # feature maps of the block it feeds
    ) -> None:
        super().__init__()
        self.conv = EqualizedConv2d(img_channels, out_channels, 1, double_backward=True)

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        # img: [N, img_channels, H, W] -> [N, C, H, W]
        return F.leaky_relu(self.conv(img), LRELU_SLOPE)


class DownBlock(nn.Module):
    """Block at r > 4: conv3×3 -> LReLU -> blur -> conv3×3 -> 2×2 down -> LReLU (r -> r/2)."""

    def __init__(
        self,
        *,
        in_channels: int,  # feature maps at r
        out_channels: int,  # feature maps at r/2
    ) -> None:
        super().__init__()
        self.conv0 = EqualizedConv2d(in_channels, in_channels, 3, double_backward=True)
        self.blur = Blur(double_backward=True)
        self.conv1 = EqualizedConv2d(in_channels, out_channels, 3, double_backward=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: [N, C_in, r, r] -> [N, C_out, r/2, r/2]
        x = F.leaky_relu(self.conv0(x), LRELU_SLOPE)
        # Bias before the 2×2 average equals bias after it (the official order).
        x = downsample2d(self.conv1(self.blur(x)))
        return F.leaky_relu(x, LRELU_SLOPE)


class OutputBlock(nn.Module):
    """4×4 block: mbstd -> conv3×3 -> LReLU -> dense(16C -> C) -> LReLU -> dense(C -> 1)."""

    def __init__(
        self,
        *,
        channels: int,  # feature maps at 4×4
        mbstd_group_size: int = 4,  # minibatch-stddev maximum group size
        mbstd_num_channels: int = 1,  # minibatch-stddev appended feature maps
    ) -> None:
        super().__init__()
        self.mbstd = MinibatchStdDev(group_size=mbstd_group_size, num_channels=mbstd_num_channels)
        self.conv = EqualizedConv2d(
            channels + mbstd_num_channels, channels, 3, double_backward=True
        )
        self.fc = EqualizedLinear(channels * MIN_RESOLUTION * MIN_RESOLUTION, channels)
        self.out = EqualizedLinear(channels, 1, gain=1.0)

    def forward(self, x: torch.Tensor, minibatches: int = 1) -> torch.Tensor:
        # x: [N, C, 4, 4] -> logits [N]
        x = F.leaky_relu(self.conv(self.mbstd(x, minibatches)), LRELU_SLOPE)
        x = F.leaky_relu(self.fc(x.flatten(1)), LRELU_SLOPE)
        return self.out(x).squeeze(1)


# ----------------------------------------------------------------------------------------------
# Network.


class Discriminator(nn.Module):
    """Progressive discriminator: image [N, img_channels, r, r] -> logits [N]."""

    supports_gradient_penalty = True  # WGAN-GP / R1 are meaningful (no BatchNorm)
    # Reals and fakes may share one pass (``minibatches=2``): only minibatch stddev couples
    # samples, and it groups within each minibatch. (DCGAN's BatchNorm would mix their statistics.)
    supports_joint_pass = True

    def __init__(
        self,
        *,
        resolution: int,  # final input resolution (power of two, 8..1024)
        channel_base: int = 16384,  # width at resolution r = min(channel_base // r, channel_max)
        channel_max: int = 512,  # maximum width
        channels: Mapping[int, int] | None = None,  # explicit {r: width}; None = the formula
        img_channels: int = 3,  # input colour channels
        mbstd_group_size: int = 4,  # minibatch-stddev maximum group size (largest divisor of N)
        mbstd_num_channels: int = 1,  # feature maps appended by minibatch stddev
    ) -> None:
        super().__init__()
        check_resolution(resolution)
        self._config: dict[str, Any] = {
            "resolution": int(resolution),
            "channel_base": int(channel_base),
            "channel_max": int(channel_max),
            "channels": normalize_channels(channels),
            "img_channels": int(img_channels),
            "mbstd_group_size": int(mbstd_group_size),
            "mbstd_num_channels": int(mbstd_num_channels),
        }
        self.resolution = resolution
        self.img_channels = img_channels
        self.resolutions = resolutions_up_to(resolution)
        self.channels = channel_table(
            resolution, channel_base=channel_base, channel_max=channel_max, channels=channels
        )
        width = self.channels.__getitem__
        self.from_rgb = nn.ModuleDict()
        self.blocks = nn.ModuleDict()
        for r in self.resolutions:
            self.from_rgb[str(r)] = FromRGB(img_channels=img_channels, out_channels=width(r))
            if r == MIN_RESOLUTION:
                self.blocks[str(r)] = OutputBlock(
                    channels=width(r),
                    mbstd_group_size=mbstd_group_size,
                    mbstd_num_channels=mbstd_num_channels,
                )
            else:
                self.blocks[str(r)] = DownBlock(in_channels=width(r), out_channels=width(r // 2))

    @property
    def config(self) -> dict[str, Any]:
        """Constructor kwargs as plain python types: ``Discriminator(**d.config)`` rebuilds d."""
        config = dict(self._config)
        if config["channels"] is not None:
            config["channels"] = dict(config["channels"])
        return config

    def check_active_resolution(self, resolution: int | None) -> int:
        """The active resolution (``None`` = final); ConfigError unless it is a built one."""
        return check_active_resolution(resolution, self.resolutions)

    def forward(
        self,
        img: torch.Tensor,
        *,
        resolution: int | None = None,
        alpha: float | torch.Tensor = 1.0,  # a 0-d tensor: always blended (one compiled graph)
        minibatches: int = 1,  # img is this many equal minibatches (reals, fakes) in one pass
    ) -> torch.Tensor:
        # img: [N, img_channels, resolution, resolution] -> logits [N]. Samples are independent
        # except in minibatch stddev, which groups within each of the ``minibatches``.
        resolution = self.check_active_resolution(resolution)
        alpha = check_alpha(alpha)
        expected = [self.img_channels, resolution, resolution]
        if img.ndim != 4 or list(img.shape[1:]) != expected:
            raise ValueError(
                f"img must have shape [N, {', '.join(map(str, expected))}] at resolution "
                f"{resolution}, got {list(img.shape)}"
            )
        x = self.from_rgb[str(resolution)](img)  # [N, C, r, r]
        r = resolution
        if r > MIN_RESOLUTION:
            x = self.blocks[str(r)](x)  # [N, C', r/2, r/2]
            x = fade_in(x, alpha, lambda: self.from_rgb[str(r // 2)](downsample2d(img)))
            r //= 2
        while r > MIN_RESOLUTION:
            x = self.blocks[str(r)](x)
            r //= 2
        return self.blocks[str(MIN_RESOLUTION)](x, minibatches)  # [N]
