"""Building blocks shared by the StyleGAN generator and discriminator.

Owns: equalized-learning-rate linear/conv layers, pixel normalisation, the [1, 2, 1] blur,
nearest 2× upsampling and 2×2 average downsampling, per-layer noise injection, AdaIN style
modulation and the minibatch standard-deviation layer. Everything here follows the official
StyleGAN implementation (NVlabs/stylegan, ``training/networks_stylegan.py``) and is device/dtype
agnostic: buffers are cast to the activation dtype at run time, so the layers work under
bf16/fp16 autocast and DDP without ``.cuda()`` calls.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from stylegan.errors import ConfigError
from stylegan.networks.double_backward import conv2d as double_backward_conv2d

NoiseMode = Literal["random", "const", "none"]
NOISE_MODES: tuple[str, ...] = ("random", "const", "none")
LRELU_SLOPE = 0.2  # negative slope of every LeakyReLU in StyleGAN
LRELU_GAIN = math.sqrt(2.0)  # He gain for layers followed by (leaky) ReLU
NORM_EPS = 1e-8  # epsilon of pixel norm, instance norm and minibatch stddev (official value)


def check_noise_mode(
    noise_mode: object, *, key: str = "noise_mode", aliases: Mapping[str, str] | None = None
) -> NoiseMode:
    """``noise_mode`` if it is one of :data:`NOISE_MODES` (after ``aliases``, e.g. sample.py's
    ``fixed`` for ``const``), else a one-line ConfigError naming ``key`` and the choices."""
    aliases = aliases or {}
    mode = aliases.get(noise_mode, noise_mode) if isinstance(noise_mode, str) else None
    if mode not in NOISE_MODES:
        alias_of = {target: name for name, target in aliases.items()}
        choices = ", ".join(
            f"{m} (alias {alias_of[m]})" if m in alias_of else m for m in NOISE_MODES
        )
        raise ConfigError(f"{key} must be one of {choices}; got {noise_mode!r}")
    return mode


def check_alpha(alpha: float | torch.Tensor) -> float | torch.Tensor:
    """Return ``alpha`` as a float if it is in [0, 1], else raise a ConfigError (a ValueError).

    A 0-d tensor passes through unchecked (its owner keeps it in range): compiled networks take
    alpha as a tensor, so a new value is new data, never a new graph."""
    if isinstance(alpha, torch.Tensor):
        return alpha
    value = float(alpha)
    if not 0.0 <= value <= 1.0:  # also rejects NaN
        raise ConfigError(f"alpha must be in [0, 1], got {alpha!r}")
    return value


def memory_format_of(x: torch.Tensor) -> torch.memory_format:
    """channels_last if ``x`` is laid out NHWC (and not also NCHW, as 1-channel maps are)."""
    if x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous():
        return torch.channels_last
    return torch.contiguous_format


# ----------------------------------------------------------------------------------------------
# Resampling.


def upsample2d(x: torch.Tensor) -> torch.Tensor:
    """Nearest-neighbour 2× upsampling: [N, C, H, W] -> [N, C, 2H, 2W] (exact pixel copies).

    ``F.interpolate`` keeps a channels_last input channels_last (a reshape would not)."""
    return F.interpolate(x, scale_factor=2, mode="nearest")


def downsample2d(x: torch.Tensor) -> torch.Tensor:
    """2×2 average pooling: [N, C, H, W] -> [N, C, H/2, W/2]."""
    return F.avg_pool2d(x, kernel_size=2, stride=2)


def fade_in(
    new: torch.Tensor, alpha: float | torch.Tensor, skip: Callable[[], torch.Tensor]
) -> torch.Tensor:
    """The progressive blend of a new resolution with the previous one: ``lerp(skip(), new,
    alpha)`` (official ``lerp_clip``), where ``skip()`` is the previous level in ``new``'s shape.

    A float alpha = 1 returns ``new`` itself without calling ``skip``; a 0-d tensor alpha always
    blends (one compiled graph for every alpha) and gives exactly ``new`` at 1. Used by the
    synthesis network's toRGB, the discriminator's fromRGB and :func:`fade_in_reals`."""
    if isinstance(alpha, torch.Tensor):
        return torch.lerp(skip().to(new.dtype), new, alpha.to(new.dtype))
    if alpha >= 1.0:
        return new
    return torch.lerp(skip().to(new.dtype), new, float(alpha))


def fade_in_reals(x: torch.Tensor, alpha: float) -> torch.Tensor:
    """Reals as D sees them while a resolution fades in (official ``process_reals``):
    ``lerp(upsample(downsample(x)), x, alpha)``, so reals carry the same blend of the coarse and
    the new level of detail as the fakes. alpha = 1 returns ``x`` itself. [N, C, H, W]."""
    return fade_in(x, alpha, lambda: upsample2d(downsample2d(x)))


class Blur(nn.Module):
    """Depthwise low-pass filter with the normalised outer product of [1, 2, 1] ("same" padding).

    ``double_backward=True`` (the discriminator's) runs it through
    :func:`stylegan.networks.double_backward.conv2d`, whose second derivative is cheaper."""

    def __init__(self, *, double_backward: bool = False) -> None:
        super().__init__()
        self.conv2d = double_backward_conv2d if double_backward else F.conv2d
        taps = torch.tensor([1.0, 2.0, 1.0])
        kernel = taps[:, None] * taps[None, :]
        kernel = kernel / kernel.sum()
        # Constant, rebuilt at construction: not part of the state dict.
        self.register_buffer("kernel", kernel[None, None], persistent=False)  # [1, 1, 3, 3]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        C = x.shape[1]
        weight = self.kernel.to(dtype=x.dtype).expand(C, 1, 3, 3)
        return self.conv2d(x, weight, None, padding=1, groups=C)  # [N, C, H, W]


# ----------------------------------------------------------------------------------------------
# Equalized learning rate.


class _Equalized(nn.Module):
    """The equalized-learning-rate parameterisation (Karras et al. 2018) shared by
    :class:`EqualizedLinear` and :class:`EqualizedConv2d`.

    The weight parameter ``[out, in, *kernel]`` is stored as N(0, 1/lr_mul) and scaled at run time
    by ``weight_gain = gain / sqrt(fan_in) * lr_mul`` (fan_in = everything but the output dim); the
    bias parameter is stored as ``bias_init / lr_mul`` and multiplied by ``lr_mul`` at run time, so
    the effective bias starts at ``bias_init`` and both learn ``lr_mul`` times slower.
    """

    def __init__(
        self,
        shape: tuple[int, ...],  # weight shape [out, in, *kernel]
        *,
        bias: bool,  # False = no bias parameter
        bias_init: float,  # initial value of the effective bias
        lr_mul: float,  # learning-rate multiplier
        gain: float,  # sqrt(2) before a LeakyReLU, 1 for linear outputs
    ) -> None:
        super().__init__()
        self.lr_mul = lr_mul
        self.gain = gain
        self.weight_gain = gain / math.sqrt(math.prod(shape[1:])) * lr_mul
        self.weight = nn.Parameter(torch.randn(shape) / lr_mul)
        self.bias = nn.Parameter(torch.full([shape[0]], bias_init / lr_mul)) if bias else None

    def effective_weight(self) -> torch.Tensor:
        """The weight actually applied: ``weight * weight_gain`` [out, in, *kernel]."""
        return self.weight * self.weight_gain

    def effective_parameters(self, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The weight and bias that ``forward`` applies, in the activations' ``dtype``."""
        bias = None if self.bias is None else (self.bias * self.lr_mul).to(dtype)
        return self.effective_weight().to(dtype), bias


class EqualizedLinear(_Equalized):
    """Fully-connected layer with equalized learning rate (see :class:`_Equalized`)."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        *,
        bias: bool = True,  # False = no bias parameter
        bias_init: float = 0.0,  # initial value of the effective bias
        lr_mul: float = 1.0,  # learning-rate multiplier (0.01 in the mapping network)
        gain: float = LRELU_GAIN,  # sqrt(2) before a LeakyReLU, 1 for linear outputs
    ) -> None:
        shape = (out_features, in_features)
        super().__init__(shape, bias=bias, bias_init=bias_init, lr_mul=lr_mul, gain=gain)
        self.in_features = in_features
        self.out_features = out_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: [N, in] -> [N, out]
        return F.linear(x, *self.effective_parameters(x.dtype))

    def extra_repr(self) -> str:
        return (
            f"in={self.in_features}, out={self.out_features}, bias={self.bias is not None}, "
            f"lr_mul={self.lr_mul}, gain={self.gain:.4g}"
        )


class EqualizedConv2d(_Equalized):
    """Stride-1 2-D convolution with equalized learning rate and "same" padding.

    Same parameterisation as :class:`EqualizedLinear` with
    ``fan_in = in_channels * kernel_size ** 2``. ``double_backward=True`` (the discriminator's,
    whose gradient the penalties differentiate) uses
    :func:`stylegan.networks.double_backward.conv2d`.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        *,
        bias: bool = True,  # False = no bias parameter (e.g. bias applied later in an epilogue)
        bias_init: float = 0.0,  # initial value of the effective bias
        lr_mul: float = 1.0,  # learning-rate multiplier
        gain: float = LRELU_GAIN,  # sqrt(2) before a LeakyReLU, 1 for toRGB
        double_backward: bool = False,  # True: the cheaper second derivative (D, penalties)
    ) -> None:
        if kernel_size < 1 or kernel_size % 2 != 1:
            raise ConfigError(f"kernel_size must be a positive odd integer, got {kernel_size}")
        shape = (out_channels, in_channels, kernel_size, kernel_size)
        super().__init__(shape, bias=bias, bias_init=bias_init, lr_mul=lr_mul, gain=gain)
        self.conv2d = double_backward_conv2d if double_backward else F.conv2d
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = kernel_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: [N, C_in, H, W] -> [N, C_out, H, W]
        weight, bias = self.effective_parameters(x.dtype)
        return self.conv2d(x, weight, bias, padding=self.kernel_size // 2)

    def extra_repr(self) -> str:
        return (
            f"in={self.in_channels}, out={self.out_channels}, kernel_size={self.kernel_size}, "
            f"bias={self.bias is not None}, lr_mul={self.lr_mul}, gain={self.gain:.4g}"
        )


# ----------------------------------------------------------------------------------------------
# Normalisation, noise and style.


class PixelNorm(nn.Module):
    """Normalise each feature vector to unit RMS over dim 1 (applied to z in the mapping)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.square().mean(dim=1, keepdim=True) + NORM_EPS)


class NoiseInjection(nn.Module):
    """Add one single-channel noise map per sample, scaled by a learned per-channel strength.

    ``noise_mode``: ``"random"`` draws fresh N(0, 1) noise [N, 1, H, W] each call, ``"const"``
    uses the fixed buffer ``noise_const`` [1, 1, H, W] (drawn at construction from a CPU
    generator seeded with ``seed``, hence identical in every process), ``"none"`` adds nothing.
    The strength is initialised to 0 (official), so noise has no effect until it is learned.
    """

    def __init__(
        self,
        *,
        channels: int,  # feature maps of the layer; one learned strength per channel
        resolution: int,  # spatial size H = W of the layer (size of the const noise buffer)
        seed: int = 0,  # seed of the const noise buffer; use a different one for every layer
    ) -> None:
        super().__init__()
        self.resolution = resolution
        self.weight = nn.Parameter(torch.zeros(channels))
        generator = torch.Generator(device="cpu").manual_seed(seed)
        noise = torch.randn(1, 1, resolution, resolution, generator=generator)
        self.register_buffer("noise_const", noise)  # [1, 1, H, W]

    def forward(self, x: torch.Tensor, noise_mode: NoiseMode = "random") -> torch.Tensor:
        # x: [N, C, H, W] -> [N, C, H, W]
        if noise_mode == "none":
            return x
        if noise_mode == "random":
            N, _, H, W = x.shape
            noise = torch.randn(N, 1, H, W, device=x.device, dtype=x.dtype)
        elif noise_mode == "const":
            noise = self.noise_const.to(dtype=x.dtype)
        else:
            check_noise_mode(noise_mode)
        return x + noise * self.weight.to(x.dtype).view(1, -1, 1, 1)


class AdaIN(nn.Module):
    """Adaptive instance normalisation: ``instance_norm(x) * scale(w) + bias(w)``.

    The style ``[scale, bias]`` = ``affine(w)`` comes from an :class:`EqualizedLinear`
    (w_dim -> 2C, gain 1) whose scale half has bias_init 1 and bias half bias_init 0 (the official
    ``x * (style[0] + 1) + style[1]`` with zero bias). The style computed by the last forward is
    kept (detached) in ``last_style`` [N, 2C] for inspection; forward hooks on ``affine`` also see
    the w each layer received.
    """

    def __init__(
        self,
        *,
        channels: int,  # C, feature maps being modulated
        w_dim: int,  # dimensionality of w
    ) -> None:
        super().__init__()
        self.channels = channels
        self.affine = EqualizedLinear(w_dim, 2 * channels, bias=True, bias_init=0.0, gain=1.0)
        with torch.no_grad():
            self.affine.bias[:channels].fill_(1.0 / self.affine.lr_mul)
        self.last_style: torch.Tensor | None = None

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        # x: [N, C, H, W], w: [N, w_dim] -> [N, C, H, W]
        style = self.affine(w)  # [N, 2C]
        self.last_style = style.detach()
        orig_dtype = x.dtype
        y = x.float()
        y = y - y.mean(dim=(2, 3), keepdim=True)
        y = y * torch.rsqrt(y.square().mean(dim=(2, 3), keepdim=True) + NORM_EPS)
        y = y.to(orig_dtype)
        scale, bias = style.to(orig_dtype).unflatten(1, (2, self.channels)).unbind(dim=1)
        return y * scale[:, :, None, None] + bias[:, :, None, None]


# ----------------------------------------------------------------------------------------------
# Discriminator helpers.


class MinibatchStdDev(nn.Module):
    """Append the minibatch standard deviation as extra feature map(s) (official formula).

    The batch is split into groups of G = the largest divisor of N that is <= ``group_size`` (so
    any batch size works; sample i belongs to group ``i % (N // G)`` as in the official reshape).
    A batch of several concatenated minibatches (``minibatches``) is grouped within each.
    Per group: std over the group of every feature, averaged over (channels of the channel group,
    H, W), replicated over the group and pixels, and concatenated as ``num_channels`` new maps.
    """

    def __init__(
        self,
        *,
        group_size: int = 4,  # maximum group size; 1 = every sample is its own group
        num_channels: int = 1,  # number of appended feature maps (channel groups)
    ) -> None:
        super().__init__()
        if group_size < 1 or num_channels < 1:
            raise ConfigError(
                f"group_size and num_channels must be >= 1, got {group_size}, {num_channels}"
            )
        self.group_size = group_size
        self.num_channels = num_channels

    def forward(self, x: torch.Tensor, minibatches: int = 1) -> torch.Tensor:
        # x: [N, C, H, W] -> [N, C + num_channels, H, W]. ``minibatches``: x is that many equal
        # minibatches concatenated (D's reals then fakes in one pass); groups never cross them.
        N, C, H, W = x.shape
        n = self.num_channels
        if C % n != 0:
            raise ValueError(f"channels ({C}) must be divisible by mbstd num_channels ({n})")
        if minibatches < 1 or N % minibatches != 0:
            raise ValueError(f"batch {N} is not {minibatches} equal minibatches")
        K, B = minibatches, N // minibatches
        G = max(g for g in range(1, min(self.group_size, B) + 1) if B % g == 0)
        y = x.float().reshape(K, G, B // G, n, C // n, H, W)  # [K, G, M, n, c, H, W]
        y = y - y.mean(dim=1, keepdim=True)
        y = (y.square().mean(dim=1) + NORM_EPS).sqrt()  # [K, M, n, c, H, W]
        y = y.mean(dim=(3, 4, 5))  # [K, M, n]
        y = y.to(x.dtype).reshape(K, 1, B // G, n, 1, 1).expand(K, G, B // G, n, H, W)
        y = y.reshape(N, n, H, W)
        return torch.cat([x, y], dim=1).contiguous(memory_format=memory_format_of(x))
