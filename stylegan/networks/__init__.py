"""StyleGAN networks (Karras et al. 2019), following the official NVlabs/stylegan implementation.

Modules, bottom-up:

- ``layers``: equalized-LR linear/conv, PixelNorm, Blur, upsample2d/downsample2d, NoiseInjection,
  AdaIN, MinibatchStdDev, and the alpha/noise-mode checks.
- ``channels``: :func:`channels_at`, the one width function used by both G and D, and resolution
  validation.
- ``mapping``: :class:`MappingNetwork` (z -> w).
- ``synthesis``: :class:`SynthesisNetwork` (ws -> image, progressive fade-in).
- ``generator``: :class:`Generator` (mapping + synthesis + w_avg + truncation) and
  :func:`mix_styles`.
- ``discriminator``: :class:`Discriminator` (progressive, minibatch stddev).
- ``dcgan``: :class:`DCGANDiscriminator` (the seed project's BatchNorm D, BCE only).
"""

from stylegan.networks.channels import channels_at
from stylegan.networks.dcgan import DCGANDiscriminator
from stylegan.networks.discriminator import Discriminator
from stylegan.networks.generator import Generator, mix_styles
from stylegan.networks.mapping import MappingNetwork
from stylegan.networks.synthesis import SynthesisNetwork

__all__ = [
    "DCGANDiscriminator",
    "Discriminator",
    "Generator",
    "MappingNetwork",
    "SynthesisNetwork",
    "channels_at",
    "mix_styles",
]
