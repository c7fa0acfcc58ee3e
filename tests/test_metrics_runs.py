"""The metrics group end to end: the FID callback logging KID, precision/recall and PPL during
a run, the real-side cache sparing feature extraction, and fid.py printing every chosen metric."""

import csv
import re

import pytest
import torch
from conftest import ROOT, compose_config, main_in_process, run_cli
from feature_probes import CountingNet, fid_by_hand, record_features
from test_metrics import _VGG16_CONVS

from stylegan.metrics.ppl import TinyPerceptualNet
from train import train

NUMBER = r"-?\d+\.\d+"  # a printed value
FAST = [
    "callbacks.fid.feature_network=tiny",
    "callbacks.fid.num_images=32",
    "callbacks.fid.batch_size=16",
]


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

    captured = {}
    monkeypatch.setattr(cb, "load_lpips", lambda weights_path, device: TinyPerceptualNet())
    nets = record_features(monkeypatch, cb)
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
        f"paths.fid_cache_dir={tmp_path / 'fid'}",  # a miss: the real features are extracted
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
    assert logged["metrics/fid"] == pytest.approx(fid_by_hand(real, fake), rel=1e-4)
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

    nets = record_features(monkeypatch, cb, CountingNet)
    overrides = [
        "logger=csv",
        "metrics=fid_kid",
        "trainer.log_every_n_steps=1",
        "stage.total_kimg=0.064",
        "callbacks.fid.every_kimg=0.032",  # evaluations at 32 and 64 images, both at 8px
        "callbacks.fid.at_train_end=false",
        f"paths.fid_cache_dir={tmp_path / 'fid'}",
        *FAST,
    ]
    train(train_config(*overrides))
    # 32 real images once, then 32 generated per evaluation: one pass serves FID and KID.
    assert nets[0].images == 32 + 2 * 32
    rows = list(csv.DictReader((tmp_path / "csv" / "version_0" / "metrics.csv").open()))
    assert len({r["metrics/kid"] for r in rows if r.get("metrics/kid")}) == 2  # two evaluations
    train(train_config(*overrides))  # a second run: the real features are a cache hit
    assert nets[1].images == 2 * 32


def _fid_args(smoke_run, celeba_root, fid_cache) -> list[str]:
    """fid.py on the smoke run's generator: every feature metric, held-out reals and the floor.
    The last 100 of the first 512 images are held out; the floor's training reals are the other
    412 (the generator trained on all 512, which does not matter for what is checked)."""
    return [
        f"ckpt={smoke_run / 'generator.pt'}",
        f"data.root={celeba_root}",
        "data.limit=512",
        "data.holdout=100",
        "data.subset=holdout",
        f"paths.cache_dir={smoke_run.parent / 'cache'}",
        f"paths.fid_cache_dir={fid_cache}",
        "feature_network=tiny",
        "num_images=64",
        "metrics=all",
        "metrics.ppl=null",
        "metrics.kid.max_subset_size=50",
        "metrics.precision_recall.k=10",  # k=3: both 0 for this 2.5-kimg model (no swap shows)
    ]


def test_fid_py_prints_the_metrics_of_the_features_it_extracted(
    smoke_run, celeba_root, tmp_path, monkeypatch, capsys
):
    """fid.py's task in-process (the function the command runs), its feature network recording:
    every printed number is the metric's function applied to those features, and the command
    itself, on the cached real features, prints the same lines."""
    import fid
    from stylegan.metrics.kid import kernel_inception_distance
    from stylegan.metrics.precision_recall import precision_recall
    from stylegan.metrics.suite import MetricChoice

    nets = record_features(monkeypatch, fid)
    args = _fid_args(smoke_run, celeba_root, tmp_path / "fid")
    cfg = compose_config("fid", [*args, f"paths.root_dir={ROOT}"])
    torch.rand(3)  # whatever ran before in this process: fid.py seeds the noise it draws
    returned = fid.hydra_main(cfg)
    printed = capsys.readouterr().out.strip().splitlines()
    # Features in the order fid.py extracts them: 64 held-out reals (a cache miss), the 64
    # generated images, then 64 training reals for the floor.
    (net,) = nets
    assert net.images == 3 * 64
    real, fake, training = net.take(64), net.take(64), net.take(64)
    fid_value = fid_by_hand(real, fake)
    floor = fid_by_hand(training, real)
    assert returned == pytest.approx(fid_value, rel=1e-5)
    choice = MetricChoice.from_config(cfg.metrics)
    kid = kernel_inception_distance(real, fake, **choice.kid)
    pr = precision_recall(real, fake, **choice.precision_recall)
    assert kid.std > 0 and kid.subset_size == 50 and pr.precision != pr.recall  # swaps would show
    assert floor < fid_value  # real faces are far closer to held-out faces than a tiny model
    lines = printed[-3:]
    assert [re.sub(NUMBER, "#", line) for line in lines] == [
        "FID #  (64 generated vs 64 real images at 32px, tiny; real-vs-real floor #)",
        "KID # ± #  (mean ± std over 100 subsets of 50 images per side)",
        "precision #  recall #  (k=10 nearest-neighbour manifolds on the same features)",
    ]
    expected = [fid_value, floor, kid.kid, kid.std, pr.precision, pr.recall]
    decimals = [3, 3, 5, 5, 4, 4]  # as printed
    got = [float(x) for line in lines for x in re.findall(NUMBER, line)]
    for value, want, places in zip(got, expected, decimals, strict=True):
        assert value == pytest.approx(want, abs=0.6 * 10**-places), lines
    # The real command, on the real features cached above: the same three lines.
    result = run_cli("fid.py", *args, f"hydra.run.dir={tmp_path / 'cli'}")
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().splitlines()[-3:] == printed[-3:]


def test_fid_py_ppl_without_lpips_weights_is_one_line(smoke_run, tmp_path, monkeypatch, capsys):
    import fid

    status, lines = main_in_process(
        monkeypatch, capsys, fid, f"ckpt={smoke_run / 'generator.pt'}", "metrics=all",
        f"metrics.ppl.weights_path={tmp_path / 'nowhere'}", f"hydra.run.dir={tmp_path / 'run'}",
    )  # fmt: skip
    assert status == 2 and len(lines) == 1, lines
    assert lines[0].startswith("error: PPL needs LPIPS' VGG-16 weights")
    assert "weights_path=" in lines[0]


@pytest.mark.slow
def test_fid_py_prints_ppl_with_local_lpips_weights(smoke_run, celeba_root, tmp_path, capsys):
    """The whole PPL path offline: LPIPS from a local VGG-16 file (random stand-in weights of
    the right shapes), the 32px generator's crops upsampled for VGG; the printed values are
    PPL computed again from the checkpoint, the weights and the seed."""
    import fid
    from stylegan.checkpoints import load_generator
    from stylegan.metrics.ppl import load_lpips
    from stylegan.metrics.suite import MetricChoice, ppl_metrics

    g = torch.Generator().manual_seed(0)
    state = {}
    for i, cin, cout in _VGG16_CONVS:
        state[f"features.{i}.weight"] = torch.randn(cout, cin, 3, 3, generator=g) * 0.05
        state[f"features.{i}.bias"] = torch.zeros(cout)
    torch.save(state, tmp_path / "vgg16-397923af.pth")
    cfg = compose_config(
        "fid",
        [
            f"ckpt={smoke_run / 'generator.pt'}",
            f"data.root={celeba_root}",
            "data.limit=512",
            f"paths.root_dir={ROOT}",
            f"paths.cache_dir={smoke_run.parent / 'cache'}",
            "feature_network=tiny",
            "num_images=32",
            "metrics=all",
            "metrics.ppl.num_samples=6",
            "metrics.ppl.variants=[z_end,w_end]",
            f"metrics.ppl.weights_path={tmp_path}",
        ],
    )
    fid.hydra_main(cfg)
    ppl = [x for x in capsys.readouterr().out.splitlines() if x.startswith("PPL ")]
    assert [x.split()[1:3] for x in ppl] == [["W", "end"], ["Z", "end"]]
    generator, _ = load_generator(cfg.ckpt)
    choice, lpips = MetricChoice.from_config(cfg.metrics), load_lpips(str(tmp_path))
    with torch.no_grad():
        expected = ppl_metrics(generator, lpips, choice=choice, seed=cfg.seed)
    assert expected["ppl_w_end"] != expected["ppl_z_end"]  # a swap of the two would show
    got = [float(x.split()[3]) for x in ppl]
    assert got == pytest.approx([expected["ppl_w_end"], expected["ppl_z_end"]], abs=0.006)


def test_fid_py_noise_none_measures_the_noiseless_images(
    smoke_run, celeba_root, tmp_path, monkeypatch, capsys
):
    """``noise=none`` scores exactly the images the generator renders without its noise inputs
    (the same z): their features are what fid.py compares; ``noise=random`` (the default) scores
    others. A bad value is one line."""
    import fid
    from stylegan.checkpoints import load_generator
    from stylegan.imaging import to_uint8
    from stylegan.metrics.feature_networks import TinyFeatureNet

    G, _ = load_generator(smoke_run / "generator.pt")
    args = [
        a
        for a in _fid_args(smoke_run, celeba_root, tmp_path / "fid")
        if ".kid." not in a
        and ".precision_recall." not in a
        and a not in ("metrics=all", "metrics.ppl=null")
    ]
    args += ["metrics=fid", "floor=false"]
    generated = {}
    for noise in ("none", "random"):
        nets = record_features(monkeypatch, fid)
        fid.evaluate_fid(compose_config("fid", [*args, f"noise={noise}", f"paths.root_dir={ROOT}"]))
        (net,) = nets
        if net.images > 64:  # the first call extracts the held-out reals (then cached)
            net.take(net.images - 64)
        generated[noise] = net.take(64)
    gen = torch.Generator().manual_seed(0)  # fid.py's latents: seed 0, drawn 8 at a time
    with torch.no_grad():
        z = [torch.randn(8, G.z_dim, generator=gen) for _ in range(8)]
        by_hand = torch.cat([TinyFeatureNet()(to_uint8(G(c, noise_mode="none"))) for c in z])
    torch.testing.assert_close(generated["none"], by_hand, rtol=1e-5, atol=1e-6)
    assert not torch.allclose(generated["random"], generated["none"])
    capsys.readouterr()  # the evaluations' progress bars
    status, lines = main_in_process(
        monkeypatch, capsys, fid, f"ckpt={smoke_run / 'generator.pt'}", "noise=off"
    )
    assert status == 2 and len(lines) == 1 and "noise" in lines[0], lines
