"""KID, precision/recall, PPL and the real-features cache (stylegan.metrics.kid,
precision_recall, ppl, features): each against a hand or brute-force computation on small
inputs, and offline (a stand-in perceptual network, never a download)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from stylegan.metrics.feature_networks import TinyFeatureNet
from stylegan.metrics.features import (
    features_of,
    generated_features,
    real_features,
    real_features_cache_path,
)
from stylegan.metrics.kid import kernel_inception_distance
from stylegan.metrics.ppl import (
    PerceptualNetworkUnavailable,
    TinyPerceptualNet,
    filtered_mean,
    load_lpips,
    perceptual_path_length,
)
from stylegan.metrics.precision_recall import precision_recall
from stylegan.metrics.statistics import feature_statistics, frechet_distance, statistics_of
from stylegan.networks import Generator

TINY_G = dict(z_dim=16, w_dim=16, mapping_layers=2, channel_base=128, channel_max=16)


def _feats(n: int, d: int, seed: int, shift: float = 0.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g) + shift


def _noise_images(n: int, size: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 3, size, size), generator=g, dtype=torch.uint8)


# ---------------------------------------------------------------------------- KID
def _mmd_unbiased(x: np.ndarray, y: np.ndarray) -> float:
    """The KID paper's unbiased MMD² with k(a, b) = (aᵀb / d + 1)³, by explicit loops."""
    d = x.shape[1]

    def k(a, b):
        return (a @ b / d + 1.0) ** 3

    m, n = len(x), len(y)
    kxx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    kyy = sum(k(y[i], y[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    kxy = sum(k(x[i], y[j]) for i in range(m) for j in range(n)) / (m * n)
    return kxx + kyy - 2 * kxy


def test_kid_with_one_full_subset_is_the_unbiased_mmd_by_hand():
    real, fake = _feats(20, 6, 0), _feats(20, 6, 1, shift=0.5)
    result = kernel_inception_distance(real, fake, subsets=3, max_subset_size=1000)
    # Every "subset" is all 20 vectors (fewer than max_subset_size), so all draws agree.
    assert result.subset_size == 20 and result.subsets == 3
    expected = _mmd_unbiased(real.double().numpy(), fake.double().numpy())
    assert result.kid == pytest.approx(expected, rel=1e-9)
    assert result.std == pytest.approx(0.0, abs=1e-12)


def test_kid_is_near_zero_for_one_distribution_and_grows_with_the_shift():
    real = _feats(300, 16, 0)
    same = kernel_inception_distance(real, _feats(300, 16, 1), subsets=20, max_subset_size=100)
    far = kernel_inception_distance(real, _feats(300, 16, 2, 1.0), subsets=20, max_subset_size=100)
    assert abs(same.kid) < 3 * same.std + 1e-3  # unbiased: scatters around 0
    assert far.kid > 20 * abs(same.kid) and far.std > 0 and far.subset_size == 100
    again = kernel_inception_distance(real, _feats(300, 16, 1), subsets=20, max_subset_size=100)
    assert again == same  # seeded subsets


def test_kid_mean_and_std_over_subsets_are_those_of_the_per_subset_mmds():
    """With real subsets (50 of 120 vectors, 4 draws): the subsets torchmetrics draws under the
    seed, each one's MMD by the loops above; KID is their mean, its std their population std."""
    real, fake = _feats(120, 4, 0), _feats(90, 4, 1, shift=0.3)
    result = kernel_inception_distance(real, fake, subsets=4, max_subset_size=50, seed=3)
    gen = torch.Generator().manual_seed(3)  # what torch.manual_seed(3) makes randperm draw
    scores = []
    for _ in range(4):
        r = real[torch.randperm(120, generator=gen)[:50]]
        f = fake[torch.randperm(90, generator=gen)[:50]]
        scores.append(_mmd_unbiased(r.double().numpy(), f.double().numpy()))
    assert len(set(scores)) == 4  # different subsets: a spread to compare
    assert result.kid == pytest.approx(np.mean(scores), rel=1e-9)
    assert result.std == pytest.approx(np.std(scores), rel=1e-6)
    assert (result.subsets, result.subset_size) == (4, 50)


def test_kid_rejects_mismatched_features():
    with pytest.raises(ValueError, match="features"):
        kernel_inception_distance(torch.zeros(5, 4), torch.zeros(5, 3))


# ---------------------------------------------------------------------------- precision/recall
def _pr_brute_force(real: np.ndarray, fake: np.ndarray, k: int) -> tuple[float, float]:
    """Kynkäänniemi et al. 2019, Eq. 1-3, transcribed literally with Python loops."""

    def radii(x):
        return [sorted(np.linalg.norm(x - x[i], axis=1))[k] for i in range(len(x))]

    def inside(points, centers, r):
        return [
            any(np.linalg.norm(p - c) <= rc for c, rc in zip(centers, r, strict=True))
            for p in points
        ]

    precision = float(np.mean(inside(fake, real, radii(real))))
    recall = float(np.mean(inside(real, fake, radii(fake))))
    return precision, recall


def test_precision_recall_matches_hand_computed_values_in_one_dimension():
    real = torch.tensor([[0.0], [1.0], [2.0], [3.0], [4.0]])  # k=1 radii: all 1
    fake = torch.tensor([[0.5], [0.6], [20.0], [20.5], [3.0]])  # radii 0.1, 0.1, .5, .5, 2.4
    # precision: 0.5, 0.6 and 3.0 lie in real balls -> 3/5; recall: 1, 2, 3, 4 lie in the ball
    # of 3.0 (radius 2.4), 0 in none -> 4/5.
    assert precision_recall(real, fake, k=1)[:2] == pytest.approx((0.6, 0.8))


@pytest.mark.parametrize("k", [1, 3])
def test_precision_recall_matches_the_brute_force_definition(k):
    real, fake = _feats(60, 8, 0), _feats(50, 8, 1) + 0.8
    got = precision_recall(real, fake, k=k, batch_size=16)  # several row blocks
    expected = _pr_brute_force(real.numpy(), fake.numpy(), k)
    assert got.precision == pytest.approx(expected[0]) and got.recall == pytest.approx(expected[1])
    assert 0 < got.precision < 1 and 0 < got.recall < 1


def test_precision_recall_needs_more_images_than_k():
    with pytest.raises(ValueError, match="more than k"):
        precision_recall(_feats(3, 4, 0), _feats(10, 4, 1), k=3)


# ---------------------------------------------------------------------------- features
def test_statistics_of_features_give_the_fid_of_the_image_pipeline():
    net = TinyFeatureNet()
    a, b = _noise_images(40, 16, 0), _noise_images(40, 16, 1)[:, :, :, :8].repeat(1, 1, 1, 2)
    fa, fb = features_of([a[:16], a[16:]], net), features_of([b], net)
    assert fa.shape == (40, 64) and fa.dtype == torch.float32
    expected = frechet_distance(feature_statistics([a], net), feature_statistics([b], net))
    assert frechet_distance(statistics_of(fa), statistics_of(fb)) == pytest.approx(expected, 1e-6)


def test_real_features_are_cached_and_a_hit_extracts_nothing(tmp_path):
    images = _noise_images(30, 16, 3)
    calls = []

    def images_fn(bs):
        calls.append(bs)
        return [images[i : i + bs] for i in range(0, len(images), bs)]

    kw = dict(key=["k", "16px"], count=24, feature_name="tiny", cache_dir=tmp_path, batch_size=8)
    first = real_features(images_fn, feature_net=TinyFeatureNet(), **kw)
    assert first.shape == (24, 64) and calls == [8]
    assert real_features_cache_path(
        tmp_path, key=["k", "16px"], count=24, feature_name="tiny"
    ).is_file()
    again = real_features(images_fn, **kw)  # no network given, none loaded: a hit
    assert torch.equal(first, again) and calls == [8]


def test_generated_features_quantize_like_real_data():
    net = TinyFeatureNet()
    images = _noise_images(10, 16, 4)
    pos = 0

    def generate(n):
        nonlocal pos
        out = images[pos : pos + n].float() / 127.5 - 1.0
        pos += n
        return out

    got = generated_features(generate, num_images=10, batch_size=4, feature_net=net)
    assert torch.allclose(got, net(images), atol=1e-6)


# ---------------------------------------------------------------------------- PPL
class _LinearG(torch.nn.Module):
    """mapping = identity, synthesis = a fixed linear map of w to a 3×8×8 image."""

    z_dim = w_dim = 4
    num_ws = 2

    def __init__(self):
        super().__init__()
        self.B = torch.randn(3 * 8 * 8, 4, generator=torch.Generator().manual_seed(0))

    def mapping(self, z):
        return z

    def synthesis(self, ws, *, resolution=None, alpha=1.0, noise_mode="random"):
        assert noise_mode == "const"  # the two images of a pair share their noise
        return (ws[:, 0] @ self.B.T).view(-1, 3, 8, 8)


def _mse(a, b):
    return (a - b).square().mean(dim=(1, 2, 3))


def test_ppl_in_w_of_a_linear_generator_is_the_hand_computed_value():
    G, n = _LinearG(), 200
    got = perceptual_path_length(G, _mse, space="w", sampling="full", num_samples=n,
                                 batch_size=n, crop=False, seed=5)  # fmt: skip
    # The same draws by hand: t ~ U(0,1), then z0, z1; in W the step is eps * B (w1 - w0),
    # so every distance is mean((B (w1 - w0))²) whatever t.
    gen = torch.Generator().manual_seed(5)
    torch.rand(n, generator=gen)
    z0, z1 = torch.randn(2 * n, 4, generator=gen).chunk(2)
    expected = filtered_mean(((z1 - z0) @ G.B.T).square().mean(dim=1))
    assert got.ppl == pytest.approx(expected, rel=1e-3)
    end = perceptual_path_length(G, _mse, space="w", sampling="end", num_samples=n,
                                 batch_size=64, crop=False, seed=5)  # fmt: skip
    assert end.ppl == pytest.approx(expected, rel=1e-3)  # t does not matter for a linear G


def test_filtered_mean_drops_the_outer_percentiles():
    d = torch.cat([torch.ones(990), torch.full((5,), 1e6), torch.full((5,), -1e6)])
    assert filtered_mean(d) == pytest.approx(1.0)
    # NVlabs' stylegan2-ada: np.percentile(d, 1, method="lower") .. (d, 99, method="higher").
    r = np.random.default_rng(0).lognormal(size=777)
    lo, hi = np.percentile(r, 1, method="lower"), np.percentile(r, 99, method="higher")
    assert filtered_mean(torch.from_numpy(r)) == pytest.approx(r[(r >= lo) & (r <= hi)].mean())


def test_ppl_of_a_tiny_generator_all_four_variants_offline():
    torch.manual_seed(0)
    G = Generator(resolution=16, **TINY_G).eval()
    net = TinyPerceptualNet()
    values = {}
    for space, sampling in itertools.product(("z", "w"), ("full", "end")):
        r = perceptual_path_length(G, net, space=space, sampling=sampling, num_samples=24,
                                   batch_size=8, seed=1)  # fmt: skip
        assert r.num_samples == 24 and np.isfinite(r.ppl) and r.ppl > 0
        values[space, sampling] = r.ppl
    assert len(set(values.values())) == 4
    again = perceptual_path_length(G, net, space="w", sampling="end", num_samples=24,
                                   batch_size=12, seed=1)  # fmt: skip
    assert again.ppl == pytest.approx(values["w", "end"], rel=1e-5)  # batching doesn't matter
    other = perceptual_path_length(G, net, space="w", sampling="end", num_samples=24, seed=2)
    assert other.ppl != values["w", "end"]
    with pytest.raises(ValueError, match="space"):
        perceptual_path_length(G, net, space="x", num_samples=4)


def test_lpips_weights_missing_is_one_line_naming_the_file_and_the_fix(tmp_path):
    with pytest.raises(PerceptualNetworkUnavailable) as info:
        load_lpips(tmp_path)  # a folder without the file
    msg = str(info.value)
    assert "\n" not in msg and "vgg16-397923af.pth" in msg and "weights_path=" in msg
    bad = tmp_path / "vgg16-397923af.pth"
    bad.write_bytes(b"not a state dict")
    with pytest.raises(PerceptualNetworkUnavailable, match="can't load"):
        load_lpips(bad)


_VGG16_CONVS = [(0, 3, 64), (2, 64, 64), (5, 64, 128), (7, 128, 128), (10, 128, 256),
                (12, 256, 256), (14, 256, 256), (17, 256, 512), (19, 512, 512), (21, 512, 512),
                (24, 512, 512), (26, 512, 512), (28, 512, 512)]  # fmt: skip


def test_lpips_loads_a_local_vgg16_file_without_downloading(tmp_path, monkeypatch):
    import torchvision

    def no_download(*args, **kwargs):
        raise AssertionError("tried to download")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", no_download)
    monkeypatch.setattr(torchvision.models._api.WeightsEnum, "get_state_dict", no_download)
    g = torch.Generator().manual_seed(0)
    state = {}
    for i, cin, cout in _VGG16_CONVS:
        state[f"features.{i}.weight"] = torch.randn(cout, cin, 3, 3, generator=g) * 0.05
        state[f"features.{i}.bias"] = torch.zeros(cout)
    state["classifier.0.weight"] = torch.zeros(2, 2)  # torchvision's file has it; ignored
    torch.save(state, tmp_path / "vgg16-397923af.pth")

    lpips = load_lpips(tmp_path)  # the folder form
    conv = lpips.lpips.net.slice5[28 - 23]
    assert torch.equal(conv.weight, state["features.28.weight"])
    x = torch.rand(2, 3, 32, 32, generator=g) * 2 - 1
    y = torch.rand(2, 3, 32, 32, generator=g) * 2 - 1
    with torch.no_grad():
        assert torch.allclose(lpips(x, x), torch.zeros(2), atol=1e-6)
        assert (lpips(x, y) > 0).all() and lpips(x, y).shape == (2,)
