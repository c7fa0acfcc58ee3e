"""The StyleGAN mapping network f: Z -> W.

Owns :class:`MappingNetwork`: PixelNorm on z, then ``num_layers`` equalized-LR fully-connected
layers (gain sqrt 2, learning-rate multiplier ``lr_mul`` = 0.01 on every layer) each followed by
LeakyReLU(0.2), as in the official ``G_mapping``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from stylegan.errors import ConfigError
from stylegan.networks.layers import LRELU_GAIN, LRELU_SLOPE, EqualizedLinear, PixelNorm


class MappingNetwork(nn.Module):
    """8-layer MLP mapping latents z [N, z_dim] to intermediate latents w [N, w_dim]."""

    def __init__(
        self,
        *,
        z_dim: int = 512,  # dimensionality of the input latent z
        w_dim: int = 512,  # dimensionality of w (also the width of the hidden layers)
        num_layers: int = 8,  # number of fully-connected layers (>= 1)
        lr_mul: float = 0.01,  # learning-rate multiplier of every layer (paper: 0.01)
    ) -> None:
        super().__init__()
        if num_layers < 1:
            raise ConfigError(f"mapping num_layers must be >= 1, got {num_layers}")
        self.z_dim = z_dim
        self.w_dim = w_dim
        self.num_layers = num_layers
        self.lr_mul = lr_mul
        self.norm = PixelNorm()
        dims = [z_dim] + [w_dim] * num_layers
        self.layers = nn.ModuleList(
            EqualizedLinear(dims[i], dims[i + 1], lr_mul=lr_mul, gain=LRELU_GAIN)
            for i in range(num_layers)
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        # z: [N, z_dim] -> w: [N, w_dim]
        if z.ndim != 2 or z.shape[1] != self.z_dim:
            raise ValueError(f"z must have shape [N, {self.z_dim}], got {list(z.shape)}")
        x = self.norm(z)
        for layer in self.layers:
            x = F.leaky_relu(layer(x), LRELU_SLOPE)
        return x
