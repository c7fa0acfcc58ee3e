"""KID (Bińkowski et al. 2018, *Demystifying MMD GANs*): the unbiased squared MMD with the cubic
polynomial kernel ``k(x, y) = (xᵀy / D + 1)³`` between real and generated feature vectors,
averaged over random subsets.

The computation is torchmetrics' :class:`~torchmetrics.image.kid.KernelInceptionDistance` fed
with features that were already extracted (:mod:`stylegan.metrics.features`), so KID costs no
extra pass through the feature network. Subsets follow NVlabs' stylegan2-ada ``kernel_inception
_distance``: ``subsets`` draws of ``min(n_real, n_fake, max_subset_size)`` vectors from each side,
seeded, so the same features give the same value. Unlike FID, KID is unbiased in the number of
images, which makes it the number to compare at the few thousand images a CPU affords.
"""

from __future__ import annotations

import warnings
from typing import NamedTuple

import torch
from torch import Tensor, nn


class KIDResult(NamedTuple):
    """KID averaged over subsets, the standard deviation over those subsets, and the sizes."""

    kid: float
    std: float
    subsets: int
    subset_size: int


class _Given(nn.Module):
    """Feature "network" for features that are already extracted: the identity."""

    def __init__(self, num_features: int) -> None:
        super().__init__()
        self.num_features = num_features

    def forward(self, features: Tensor) -> Tensor:
        return features


def kernel_inception_distance(
    real: Tensor,
    fake: Tensor,
    *,
    subsets: int = 100,  # random subset pairs averaged (NVlabs and torchmetrics: 100)
    max_subset_size: int = 1000,  # vectors per subset; fewer when either side has fewer
    seed: int = 0,  # subset draws; the global RNG is left untouched
) -> KIDResult:
    """KID between ``real [n, D]`` and ``fake [m, D]`` features (float64 kernel sums)."""
    if real.ndim != 2 or fake.ndim != 2 or real.shape[1] != fake.shape[1]:
        raise ValueError(
            f"need real [n, D] and fake [m, D] features, got {tuple(real.shape)} and "
            f"{tuple(fake.shape)}"
        )
    size = min(real.shape[0], fake.shape[0], max_subset_size)
    if size < 2:
        raise ValueError(f"KID needs at least 2 real and 2 generated images, got {size}")
    from torchmetrics.image.kid import KernelInceptionDistance

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*will save all extracted features.*")
        metric = KernelInceptionDistance(
            feature=_Given(real.shape[1]),
            subsets=subsets,
            subset_size=size,
            reset_real_features=False,
            sync_on_compute=False,  # features are already gathered on every rank
        )
    metric.update(real.double().cpu(), real=True)
    metric.update(fake.double().cpu(), real=False)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        mean, std = metric.compute()
    return KIDResult(float(mean), float(std), subsets, size)
