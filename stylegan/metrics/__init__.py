"""Metrics of a generator against real images, one concern per module:

- ``feature_networks``: the image -> features networks (TF-Inception, torchmetrics', tiny).
- ``statistics``: FID's feature statistics and the Fréchet distance (torchmetrics' states).
- ``batches``: the uint8 batches every metric featurizes (real, up to a count; generated, per rank).
- ``cache``: the one keyed disk cache of real statistics and real features.
- ``distributed``: rank-0 compute + broadcast, per-rank shares, gathers.
- ``fid``: cached real statistics and the FID of a generator.
- ``features``: cached real features and gathered generated features (KID, precision/recall).
- ``kid``, ``precision_recall``, ``ppl``, ``inception`` (the TF-Inception graph run eagerly).
- ``suite``: the ``metrics`` group: what to compute, one feature pass for all, the evaluation
  the FID callback and ``fid.py`` both run.
"""

from stylegan.imaging import to_uint8
from stylegan.metrics.feature_networks import (
    FEATURE_NETWORKS,
    FeatureNetworkUnavailable,
    feature_batch_size,
    load_feature_network,
)
from stylegan.metrics.fid import compute_fid, real_statistics, real_stats_cache_path
from stylegan.metrics.statistics import FeatureStats, feature_statistics, frechet_distance

__all__ = [
    "FEATURE_NETWORKS",
    "FeatureNetworkUnavailable",
    "FeatureStats",
    "compute_fid",
    "feature_batch_size",
    "feature_statistics",
    "frechet_distance",
    "load_feature_network",
    "real_statistics",
    "real_stats_cache_path",
    "to_uint8",
]
