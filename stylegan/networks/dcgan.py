"""The seed project's DCGAN discriminator, kept as a baseline.

Owns :class:`DCGANDiscriminator`: 4×4 stride-2 convolutions doubling the width
(64 -> 128 -> 256 -> 512 at 64×64; BatchNorm on all but the first; LeakyReLU 0.2) and a final
4×4 valid convolution to one logit. It uses BatchNorm, so per-sample gradient penalties are
meaningless: ``supports_gradient_penalty = False`` lets the trainer refuse WGAN-GP (BCE only).
"""

from __future__ import annotations

import torch
from torch import nn

from stylegan.errors import ConfigError
from stylegan.networks.channels import check_resolution
from stylegan.networks.layers import LRELU_SLOPE

DCGAN_INIT_STD = 0.02  # N(0, 0.02) weight init of the DCGAN paper


class DCGANDiscriminator(nn.Module):
    """DCGAN discriminator: image [N, img_channels, r, r] -> logits [N] (no sigmoid)."""

    supports_gradient_penalty = False  # BatchNorm mixes samples: no WGAN-GP / R1

    def __init__(
        self,
        *,
        resolution: int = 64,  # input resolution; log2(resolution) - 2 stride-2 convs
        img_channels: int = 3,  # input colour channels
        base_channels: int = 64,  # width of the first conv, doubled at every following conv
    ) -> None:
        super().__init__()
        check_resolution(resolution)
        self.config: dict[str, int] = {
            "resolution": int(resolution),
            "img_channels": int(img_channels),
            "base_channels": int(base_channels),
        }  # constructor kwargs: DCGANDiscriminator(**d.config) rebuilds d
        self.resolution = resolution
        self.img_channels = img_channels
        num_down = resolution.bit_length() - 3  # log2(resolution) - 2, down to 4×4
        layers: list[nn.Module] = []
        in_ch = img_channels
        for i in range(num_down):
            out_ch = base_channels * 2**i
            layers.append(nn.Conv2d(in_ch, out_ch, 4, stride=2, padding=1, bias=False))
            if i > 0:
                layers.append(nn.BatchNorm2d(out_ch))
            layers.append(nn.LeakyReLU(LRELU_SLOPE))
            in_ch = out_ch
        layers.append(nn.Conv2d(in_ch, 1, 4, stride=1, padding=0, bias=False))  # 4×4 -> 1×1
        self.main = nn.Sequential(*layers)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """DCGAN init: conv weights N(0, 0.02), BatchNorm weight N(1, 0.02) and bias 0."""
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.normal_(module.weight, 0.0, DCGAN_INIT_STD)
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.normal_(module.weight, 1.0, DCGAN_INIT_STD)
                nn.init.zeros_(module.bias)

    def forward(
        self,
        img: torch.Tensor,
        *,
        resolution: int | None = None,  # must be None or the built resolution
        alpha: float = 1.0,  # ignored (uniform interface with the progressive Discriminator)
    ) -> torch.Tensor:
        # img: [N, img_channels, r, r] -> logits [N]
        del alpha
        if resolution is not None and resolution != self.resolution:
            raise ConfigError(
                f"DCGANDiscriminator is not progressive: resolution must be None or "
                f"{self.resolution}, got {resolution!r}"
            )
        expected = [self.img_channels, self.resolution, self.resolution]
        if img.ndim != 4 or list(img.shape[1:]) != expected:
            raise ValueError(
                f"img must have shape [N, {', '.join(map(str, expected))}], got {list(img.shape)}"
            )
        return self.main(img).flatten()  # [N]
