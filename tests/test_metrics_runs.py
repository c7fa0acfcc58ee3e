"""The metrics group end to end: the FID callback logging KID, precision/recall and PPL during
a run, the real-side cache sparing feature extraction, and fid.py printing every chosen metric."""

import csv

import numpy as np
import pytest
import scipy.linalg
import torch
from conftest import run_cli
from test_metrics import _VGG16_CONVS

from stylegan.metrics.feature_networks import TinyFeatureNet
from stylegan.metrics.ppl import TinyPerceptualNet
from train import train

FAST = [
    "callbacks.fid.feature_network=tiny",
    "callbacks.fid.num_images=32",
    "callbacks.fid.batch_size=16",
]


class _CountingNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.inner = TinyFeatureNet()
        self.num_features = self.inner.num_features
        self.images = 0

    def forward(self, x):
        self.images += x.shape[0]
        return self.inner(x)


class _RecordingNet(_CountingNet):
    """Keeps every feature vector it returns, in order."""

    def __init__(self):
        super().__init__()
        self.features: list[torch.Tensor] = []

    def forward(self, x):
        out = super().forward(x)
        self.features.append(out.detach().clone())
        return out


def _fid_by_hand(real: np.ndarray, fake: np.ndarray) -> float:
    """||mu_r - mu_f||^2 + tr(S_r + S_f - 2 (S_r S_f)^(1/2)), unbiased covariances."""
    mu_r, mu_f = real.mean(0), fake.mean(0)
    s_r, s_f = np.cov(real, rowvar=False), np.cov(fake, rowvar=False)
    root = scipy.linalg.sqrtm(s_r @ s_f).real
    return float(((mu_r - mu_f) ** 2).sum() + np.trace(s_r + s_f - 2 * root))


def test_callback_logs_kid_precision_recall_and_ppl_next_to_fid(
    train_config, tmp_path, monkeypatch
):
    """The logged FID, KID ± std, precision, recall and PPL are the metrics' functions applied to
    the features the evaluation extracted (and to the EMA generator it evaluated)."""
    import stylegan.callbacks.fid as cb
    import train as train_module
    from stylegan.metrics.kid import kernel_inception_distance
    from stylegan.metrics.precision_recall import precision_recall
    from stylegan.metrics.suite import MetricChoice, ppl_metrics

    nets, captured = [], {}
    monkeypatch.setattr(cb, "load_lpips", lambda weights_path, device: TinyPerceptualNet())

    def recording(name, *, weights_path=None, device="cpu"):
        nets.append(_RecordingNet())
        return nets[-1]

    monkeypatch.setattr(cb, "load_feature_network", recording)
    build_module = train_module.build_module

    def capture(cfg, schedule):
        captured["m"] = build_module(cfg, schedule)
        return captured["m"]

    monkeypatch.setattr(train_module, "build_module", capture)
    cfg = train_config(
        "logger=csv",
        "metrics=all",
        "metrics.kid.max_subset_size=16",  # subsets of half the images: a spread to compare
        "metrics.ppl.num_samples=8",
        "metrics.ppl.batch_size=8",
        "stage.total_kimg=0.064",
        "callbacks.fid.at_train_end=true",
        f"paths.cache_dir={tmp_path / 'cache'}",  # a cache miss: the real features are extracted
        *FAST,
    )
    fid = train(cfg)
    rows = list(csv.DictReader((tmp_path / "csv" / "version_0" / "metrics.csv").open()))
    logged = {k: float(v) for row in rows for k, v in row.items() if k.startswith("metrics/") and v}
    assert logged["metrics/fid"] == pytest.approx(fid)
    # One evaluation: 32 real images, then 32 generated ones, through the feature network.
    (net,) = nets
    features = torch.cat(net.features)
    assert features.shape == (64, net.num_features)
    real, fake = features[:32], features[32:]
    assert logged["metrics/fid"] == pytest.approx(
        _fid_by_hand(real.double().numpy(), fake.double().numpy()), rel=1e-4
    )
    choice = MetricChoice.from_config(cfg.metrics)
    kid = kernel_inception_distance(real, fake, **choice.kid)
    assert logged["metrics/kid"] == pytest.approx(kid.kid, rel=1e-5, abs=1e-9)
    assert kid.subset_size == 16 and kid.std > 0
    assert logged["metrics/kid_std"] == pytest.approx(kid.std, rel=1e-5)
    pr = precision_recall(real, fake, **choice.precision_recall)
    assert (logged["metrics/precision"], logged["metrics/recall"]) == pytest.approx(
        (pr.precision, pr.recall)
    )
    assert pr.precision != pr.recall  # so a swap of the two would show
    module = captured["m"]
    ppl = ppl_metrics(module.generator_ema, TinyPerceptualNet(), choice=choice,
                      resolution=module.resolution, alpha=module.alpha, seed=0)  # fmt: skip
    assert sorted(ppl) == ["ppl_w_end", "ppl_w_full", "ppl_z_end", "ppl_z_full"]
    for name, value in ppl.items():
        assert logged[f"metrics/{name}"] == pytest.approx(value, rel=1e-5)


def test_cached_real_features_serve_fid_and_kid_without_a_second_pass(
    train_config, tmp_path, monkeypatch
):
    import stylegan.callbacks.fid as cb

    nets = []

    def counting(name, *, weights_path=None, device="cpu"):
        nets.append(_CountingNet())
        return nets[-1]

    monkeypatch.setattr(cb, "load_feature_network", counting)
    overrides = [
        "logger=csv",
        "metrics=fid_kid",
        "trainer.log_every_n_steps=1",
        "stage.total_kimg=0.064",
        "callbacks.fid.every_kimg=0.032",  # evaluations at 32 and 64 images, both at 8px
        "callbacks.fid.at_train_end=false",
        f"paths.cache_dir={tmp_path / 'cache'}",
        *FAST,
    ]
    train(train_config(*overrides))
    # 32 real images once, then 32 generated per evaluation: one pass serves FID and KID.
    assert nets[0].images == 32 + 2 * 32
    rows = list(csv.DictReader((tmp_path / "csv" / "version_0" / "metrics.csv").open()))
    assert len({r["metrics/kid"] for r in rows if r.get("metrics/kid")}) == 2  # two evaluations
    train(train_config(*overrides))  # a second run: the real features are a cache hit
    assert nets[1].images == 2 * 32


def test_fid_cli_prints_kid_with_its_spread_and_precision_recall(smoke_run, celeba_root):
    result = run_cli(
        "fid.py",
        f"ckpt={smoke_run / 'generator.pt'}",
        f"data.root={celeba_root}",
        "data.limit=512",
        f"paths.cache_dir={smoke_run.parent / 'cache'}",
        "feature_network=tiny",
        "num_images=64",
        "metrics=all",
        "metrics.ppl=null",
        "metrics.kid.max_subset_size=50",
        f"hydra.run.dir={smoke_run.parent / 'fid-all'}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.strip().splitlines()[-3:]
    assert lines[0].startswith("FID ") and "64 generated vs 64 real images at 32px" in lines[0]
    _, pm, std = lines[1].split()[1:4]
    assert lines[1].startswith("KID ") and pm == "±" and float(std) >= 0
    assert "100 subsets of 50 images per side" in lines[1]
    words = lines[2].split()
    assert words[0] == "precision" and words[2] == "recall" and "k=3" in lines[2]
    assert 0 <= float(words[1]) <= 1 and 0 <= float(words[3]) <= 1


def test_fid_cli_ppl_without_lpips_weights_is_one_line(smoke_run, celeba_root, tmp_path):
    result = run_cli(
        "fid.py",
        f"ckpt={smoke_run / 'generator.pt'}",
        f"data.root={celeba_root}",
        "metrics=all",
        f"metrics.ppl.weights_path={tmp_path / 'nowhere'}",
        f"hydra.run.dir={tmp_path / 'run'}",
    )
    assert result.returncode == 2
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: PPL needs LPIPS' VGG-16 weights") and "weights_path=" in last
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_fid_cli_prints_ppl_with_local_lpips_weights(smoke_run, celeba_root, tmp_path):
    """The whole PPL path offline: LPIPS from a local VGG-16 file (random stand-in weights of
    the right shapes), the 32px generator's crops upsampled for VGG."""
    g = torch.Generator().manual_seed(0)
    state = {}
    for i, cin, cout in _VGG16_CONVS:
        state[f"features.{i}.weight"] = torch.randn(cout, cin, 3, 3, generator=g) * 0.05
        state[f"features.{i}.bias"] = torch.zeros(cout)
    torch.save(state, tmp_path / "vgg16-397923af.pth")
    result = run_cli(
        "fid.py",
        f"ckpt={smoke_run / 'generator.pt'}",
        f"data.root={celeba_root}",
        "data.limit=512",
        f"paths.cache_dir={smoke_run.parent / 'cache'}",
        "feature_network=tiny",
        "num_images=32",
        "metrics=all",
        "metrics.ppl.num_samples=6",
        "metrics.ppl.variants=[z_end,w_end]",
        f"metrics.ppl.weights_path={tmp_path}",
        f"hydra.run.dir={tmp_path / 'run'}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    ppl = [x for x in result.stdout.splitlines() if x.startswith("PPL ")]
    assert [x.split()[1:3] for x in ppl] == [["W", "end"], ["Z", "end"]]
    assert all(float(x.split()[3]) > 0 for x in ppl)
