"""Metrics: FID (feature networks, real-statistics cache, FID of a generator); see ``fid``."""

from stylegan.metrics.fid import (
    FEATURE_NETWORKS,
    FeatureNetworkUnavailable,
    FeatureStats,
    compute_fid,
    feature_batch_size,
    feature_statistics,
    fid_of_images,
    frechet_distance,
    load_feature_network,
    real_statistics,
    real_stats_cache_path,
    to_uint8,
)

__all__ = [
    "FEATURE_NETWORKS",
    "FeatureNetworkUnavailable",
    "FeatureStats",
    "compute_fid",
    "feature_batch_size",
    "feature_statistics",
    "fid_of_images",
    "frechet_distance",
    "load_feature_network",
    "real_statistics",
    "real_stats_cache_path",
    "to_uint8",
]
