"""Data: the CelebA LightningDataModule (``celeba``) and the prepared image cache (``cache``)."""

from stylegan.data.cache import Crop, PreparedImages, build_cache
from stylegan.data.celeba import CelebADataModule, DataError

__all__ = ["CelebADataModule", "Crop", "DataError", "PreparedImages", "build_cache"]
