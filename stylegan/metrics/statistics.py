"""Feature statistics and the Fréchet distance, through torchmetrics' own code paths.

:class:`FeatureStats` is FID's summary of a feature set: mean and unbiased covariance (float64)
and the count. The distance is torchmetrics' :class:`FrechetInceptionDistance`: statistics are
written into the metric's ``real_features_*`` / ``fake_features_*`` states (sum, sum of outer
products, count; :func:`inject`) and read back from them (:func:`extract`), so the mean/covariance
formulae, the float64 accumulation, the distance (``_compute_fid``) and the cross-rank reduction
are all torchmetrics'. Everything here is local (no cross-rank communication) except a metric
built with ``sync_on_compute=True``, whose :func:`distance` sum-reduces its states over ranks.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from typing import NamedTuple

import torch
from torch import Tensor, nn

from stylegan.metrics.batches import limited
from stylegan.metrics.feature_networks import device_of


class FeatureStats(NamedTuple):
    """Mean ``[D]`` and covariance ``[D, D]`` (float64, unbiased) of ``n`` feature vectors."""

    mu: Tensor
    sigma: Tensor
    n: int


class _NoNetwork(nn.Module):
    """Placeholder feature module for a metric fed with statistics only (never called)."""

    def __init__(self, num_features: int) -> None:
        super().__init__()
        self.num_features = num_features

    def forward(self, images: Tensor) -> Tensor:
        raise RuntimeError("statistics-only FID metric has no feature network")


def fid_metric(feature_net: nn.Module, *, sync_on_compute: bool):
    """torchmetrics' ``FrechetInceptionDistance`` on ``feature_net`` (uint8 in, used as is)."""
    from torchmetrics.image.fid import FrechetInceptionDistance

    # feature=Module with `num_features`: torchmetrics uses it as is (no dummy forward pass, no
    # normalize/uint8 conversion); our networks take uint8, like torchmetrics' normalize=False.
    return FrechetInceptionDistance(
        feature=feature_net, reset_real_features=False, sync_on_compute=sync_on_compute
    )


def inject(metric, stats: FeatureStats, *, real: bool) -> None:
    """Write ``stats`` into the metric's real or fake states (sum, sum of x xᵀ, count)."""
    side = "real" if real else "fake"
    feat_sum: Tensor = getattr(metric, f"{side}_features_sum")
    cov_sum: Tensor = getattr(metric, f"{side}_features_cov_sum")
    count: Tensor = getattr(metric, f"{side}_features_num_samples")
    if stats.mu.shape != feat_sum.shape:
        raise ValueError(
            f"statistics have {tuple(stats.mu.shape)} features, metric expects "
            f"{tuple(feat_sum.shape)} (different feature network?)"
        )
    mu = stats.mu.to(device=feat_sum.device, dtype=torch.float64)
    sigma = stats.sigma.to(device=cov_sum.device, dtype=torch.float64)
    # Inverse of FrechetInceptionDistance.compute(): mean = sum / n,
    # cov = (cov_sum - n * mean meanᵀ) / (n - 1).
    feat_sum.copy_(mu * stats.n)
    cov_sum.copy_(sigma * (stats.n - 1) + stats.n * torch.outer(mu, mu))
    count.fill_(stats.n)


def extract(metric, *, real: bool) -> FeatureStats:
    """The statistics held in the metric's real or fake states (CPU float64)."""
    side = "real" if real else "fake"
    n = int(getattr(metric, f"{side}_features_num_samples").item())
    if n < 2:
        raise ValueError(f"need at least 2 images for feature statistics, got {n}")
    feat_sum = getattr(metric, f"{side}_features_sum").double()
    cov_sum = getattr(metric, f"{side}_features_cov_sum").double()
    mu = feat_sum / n
    sigma = (cov_sum - n * torch.outer(mu, mu)) / (n - 1)
    return FeatureStats(mu.cpu(), sigma.cpu(), n)


def distance(metric) -> float:
    """``metric.compute()`` as a float. States may have been injected rather than updated (or a
    rank may have featurized nothing), so torchmetrics' "compute before update" warning is moot."""
    metric.orig_dtype = torch.float64  # compute() casts the float64 result to this; keep it all
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*called before the ``update`` method.*")
        return float(metric.compute())


def feature_statistics(
    batches: Iterable[Tensor],
    feature_net: nn.Module,
    *,
    limit: int | None = None,
    device: str | torch.device | None = None,
) -> FeatureStats:
    """Mean/covariance (float64, CPU) of the features of uint8 ``batches`` (at most ``limit``)."""
    device = torch.device(device) if device is not None else device_of(feature_net)
    metric = fid_metric(feature_net, sync_on_compute=False).to(device)
    with torch.no_grad():
        for batch in limited(batches, limit):
            metric.update(batch.to(device), real=True)
    return extract(metric, real=True)


def statistics_of(features: Tensor) -> FeatureStats:
    """Mean and unbiased covariance (float64, CPU) of ``features [n, D]``: FID's statistics."""
    if features.ndim != 2 or features.shape[0] < 2:
        raise ValueError(f"need features [n >= 2, D], got {tuple(features.shape)}")
    f = features.detach().to("cpu", torch.float64)
    return FeatureStats(f.mean(dim=0), torch.cov(f.T), f.shape[0])


def frechet_distance(stats1: FeatureStats, stats2: FeatureStats) -> float:
    """FID between two sets of feature statistics (torchmetrics' formula, float64; local)."""
    metric = fid_metric(_NoNetwork(stats1.mu.numel()), sync_on_compute=False)
    inject(metric, stats1, real=True)
    inject(metric, stats2, real=False)
    return distance(metric)
