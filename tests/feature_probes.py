"""Test-only feature networks that count or record what an evaluation extracted, and FID by hand
from those features: the tests compare the metrics a run logged or printed with the metric
functions applied to the very features the run computed."""

import numpy as np
import scipy.linalg
import torch

from stylegan.metrics.feature_networks import TinyFeatureNet


class CountingNet(torch.nn.Module):
    """:class:`TinyFeatureNet` that counts the images it featurized."""

    def __init__(self):
        super().__init__()
        self.inner = TinyFeatureNet()
        self.num_features = self.inner.num_features
        self.images = 0

    def forward(self, x):
        self.images += x.shape[0]
        return self.inner(x)


class RecordingNet(CountingNet):
    """Keeps every feature vector it returns, in order."""

    def __init__(self):
        super().__init__()
        self.features: list[torch.Tensor] = []

    def forward(self, x):
        out = super().forward(x)
        self.features.append(out.detach().clone())
        return out

    def take(self, n: int) -> torch.Tensor:
        """The first ``n`` recorded feature vectors not taken yet, ``[n, D]``."""
        everything = torch.cat(self.features)
        assert everything.shape[0] >= n, (tuple(everything.shape), n)
        self.features = [everything[n:]]
        return everything[:n]


def fid_from_moments(mu1, sigma1, mu2, sigma2) -> float:
    """||mu1 - mu2||² + tr(S1 + S2 - 2 (S1 S2)^(1/2)) (scipy's matrix square root)."""
    mu1, mu2, sigma1, sigma2 = (np.asarray(a, dtype=np.float64) for a in (mu1, mu2, sigma1, sigma2))
    root = scipy.linalg.sqrtm(sigma1 @ sigma2).real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(sigma1 + sigma2 - 2 * root))


def fid_by_hand(real: torch.Tensor, fake: torch.Tensor) -> float:
    """FID between two feature sets ``[n, D]``, unbiased covariances, by numpy and scipy."""
    real, fake = real.double().numpy(), fake.double().numpy()
    return fid_from_moments(
        real.mean(0), np.cov(real, rowvar=False), fake.mean(0), np.cov(fake, rowvar=False)
    )


def record_features(monkeypatch, module, net_class: type = RecordingNet) -> list:
    """Make ``module.load_feature_network`` (the FID callback's or fid.py's) return a new
    ``net_class`` per call; returns the list the networks are appended to."""
    nets = []

    def load(name, *, weights_path=None, device="cpu"):
        nets.append(net_class())
        return nets[-1]

    monkeypatch.setattr(module, "load_feature_network", load)
    return nets
