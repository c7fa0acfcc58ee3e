"""StyleGAN (Karras et al. 2019) on CelebA with PyTorch Lightning and Hydra.

Subpackages: ``networks`` (G and D), ``data`` (CelebA data module and cache), ``callbacks``
(progressive growing, checkpoints, sample grids, export, FID), ``metrics`` (FID). Modules:
``losses``, ``schedule`` (progressive schedule), ``module`` (the LightningModule),
``checkpoints`` (load a generator back), ``sampling`` (figures), ``config`` (typed schemas of
``conf/``), ``cli`` and ``errors`` (one-line errors).
"""

__version__ = "0.1.0"

from stylegan import config as _config

_config.register()  # before any compose of conf/: the YAML files name these schemas
