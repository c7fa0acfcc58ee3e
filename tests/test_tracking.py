"""Experiment tracking: offline W&B, the FID callback and fid.py's errors, a multirun in one
process (Optuna sweeps: tests/test_clusters.py)."""

import csv
import os

import numpy as np
import pytest
import yaml
from conftest import main_in_process
from conftest import run_cli as run
from feature_probes import fid_by_hand, fid_from_moments, record_features

from train import train

FAST_FID = [
    "callbacks.fid.feature_network=tiny",
    "callbacks.fid.num_images=32",
    "callbacks.fid.batch_size=16",
]


@pytest.mark.slow
def test_wandb_goes_offline_without_credentials_network_or_stdin(tmp_path, celeba_root):
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    env["HOME"] = str(home)  # no ~/.netrc, no ~/.config/wandb
    run_dir = tmp_path / "run"
    result = run(
        "train.py",
        "experiment=smoke",
        "logger=wandb",
        "stage.total_kimg=0.1",  # the end-of-run grid and the 8px reals are all it needs
        f"data.root={celeba_root}",
        f"paths.cache_dir={tmp_path / 'cache'}",
        f"hydra.run.dir={run_dir}",
        env=env,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    output = result.stdout + result.stderr
    assert "W&B offline" in output and "wandb sync" in output
    offline_runs = list((run_dir / "wandb").glob("offline-run-*"))
    assert len(offline_runs) == 1
    assert list(offline_runs[0].glob("*.wandb")), "the offline run has no data file"
    media = offline_runs[0] / "files" / "media" / "images"
    assert list(media.glob("samples_*.png")) and list(media.glob("reals_*.png"))


def test_fid_callback_logs_fid_and_saves_best_checkpoint(train_config, tmp_path, monkeypatch):
    """Three evaluations whose FIDs are made 30, 10, 20 (the real pipeline runs; only its value
    is replaced): best.ckpt is the state of the second one, the logged best is the running
    minimum, and the run returns the last FID."""
    import torch

    import stylegan.callbacks.fid as cb
    import stylegan.metrics.suite as suite
    from stylegan.checkpoints import safe_torch_load

    scripted = iter([30.0, 10.0, 20.0])
    evaluated_at = []
    metrics = suite.feature_metrics
    nets = record_features(monkeypatch, cb)

    def scripted_metrics(generate_fn, real, **kwargs):
        (net,) = nets
        net.features.clear()  # what came before: the real side (or nothing, on a cache hit)
        result = metrics(generate_fn, real, **kwargs)
        # The real value, before it is replaced: the distance of the 32 generated features.
        s = real.stats
        fake = net.take(32).double().numpy()
        by_hand = fid_from_moments(s.mu, s.sigma, fake.mean(0), np.cov(fake, rowvar=False))
        assert result["fid"] == pytest.approx(by_hand, rel=1e-4)
        return {**result, "fid": next(scripted)}

    evaluate = cb.FIDCallback.evaluate

    def recording(self, trainer, pl_module, **kwargs):
        evaluated_at.append(pl_module.images_seen)
        return evaluate(self, trainer, pl_module, **kwargs)

    monkeypatch.setattr(suite, "feature_metrics", scripted_metrics)  # evaluate_generator's
    monkeypatch.setattr(cb.FIDCallback, "evaluate", recording)
    cfg = train_config(
        "logger=csv",
        "stage.total_kimg=0.48",
        "callbacks.fid.every_kimg=0.16",
        "callbacks.fid.at_train_end=true",  # already evaluated at the last step: not again
        "callbacks.checkpoint.every_kimg=0.16",
        "callbacks.checkpoint.keep=0",
        "callbacks.samples=null",
        *FAST_FID,
    )
    final_fid = train(cfg)
    assert evaluated_at == [160, 320, 480]
    rows = list(csv.DictReader((tmp_path / "csv" / "version_0" / "metrics.csv").open()))
    # Lightning repeats a step-logged value at later logging steps; keep each evaluation's own.
    logged = [
        (float(r["metrics/fid"]), float(r["metrics/fid_best"]))
        for r in rows
        if r.get("metrics/fid") and round(float(r["progress/kimg"]) * 1000) in evaluated_at
    ]
    assert logged == [(30.0, 30.0), (10.0, 10.0), (20.0, 10.0)]
    assert final_fid == 20.0
    folder = tmp_path / "checkpoints"
    best = safe_torch_load(folder / "best.ckpt")
    assert best["stylegan"]["progress"]["images_seen"] == 320
    # The same weights as the periodic checkpoint written at that step.
    periodic = safe_torch_load(folder / "kimg000000.320.ckpt")
    assert best["stylegan"]["progress"] == periodic["stylegan"]["progress"]
    assert best["state_dict"].keys() == periodic["state_dict"].keys()
    assert all(torch.equal(v, periodic["state_dict"][k]) for k, v in best["state_dict"].items())


def test_fid_callback_measures_against_the_held_out_images(
    train_config, tmp_path, monkeypatch, capsys
):
    """The FID-only path (cached statistics, streaming generated side): the held-out images
    are the reals, and the value is FID by hand of the features the evaluation extracted."""
    import stylegan.callbacks.fid as cb
    from stylegan.data import CelebADataModule

    served = []
    real_batches = CelebADataModule.real_batches

    def spy(self, resolution, count, batch_size, seed=0):
        served.append(set(self.prepared.files))
        return real_batches(self, resolution, count, batch_size, seed)

    monkeypatch.setattr(CelebADataModule, "real_batches", spy)
    training_files = []
    setup = CelebADataModule.setup

    def remember(self, stage=None):
        setup(self, stage)
        if self.subset == "train":
            training_files.append(set(self._prepared.files))

    monkeypatch.setattr(CelebADataModule, "setup", remember)
    nets = record_features(monkeypatch, cb)
    cfg = train_config(
        "stage.total_kimg=0.064",
        "data.holdout=100",  # the last 100 of the sample; the smoke run trains on the first 512
        "callbacks.fid.at_train_end=true",
        f"paths.fid_cache_dir={tmp_path / 'fid'}",  # a miss: the real features are extracted
        *FAST_FID,
    )
    fid = train(cfg)
    (net,) = nets  # one evaluation: 32 held-out reals, then 32 generated images
    assert net.images == 64
    assert fid == pytest.approx(fid_by_hand(net.take(32), net.take(32)), rel=1e-4)
    assert served and training_files
    held_out = served[0]
    assert len(held_out) == 100 and not held_out & training_files[0]
    # The run's last line is the FID it reached, and against what.
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last == (f"FID {fid:.2f} at 0.1 kimg (8px): 32 generated vs 32 held-out real images")


def test_fid_callback_turns_itself_off_without_a_feature_network(train_config, tmp_path):
    cfg = train_config(
        "stage.total_kimg=0.1",
        "callbacks.fid.every_kimg=0.05",
        "callbacks.fid.at_train_end=true",
        "callbacks.fid.feature_network=torchmetrics-inception",
        f"callbacks.fid.weights_path={tmp_path / 'missing.pth'}",
    )
    with pytest.warns(UserWarning, match="FID is off for this run"):
        assert train(cfg) is None
    assert (tmp_path / "checkpoints" / "last.ckpt").is_file()


def test_fid_py_bad_checkpoint_is_one_line_error(tmp_path, monkeypatch, capsys):
    import fid

    status, lines = main_in_process(
        monkeypatch, capsys, fid, f"ckpt={tmp_path / 'nope.pt'}", f"hydra.run.dir={tmp_path}"
    )
    assert status == 2 and len(lines) == 1 and lines[0].startswith("error: checkpoint not found")


@pytest.mark.slow
def test_multirun_runs_each_loss_in_its_own_directory(tmp_path, celeba_root, smoke_run):
    sweep = tmp_path / "sweep"
    result = run(
        "train.py",
        "-m",
        "loss=wgan_gp,bce",
        "experiment=smoke",
        "logger=csv",
        "stage.total_kimg=0.1",  # two jobs in one process, each to its last.ckpt
        f"data.root={celeba_root}",
        f"paths.cache_dir={smoke_run.parent / 'cache'}",
        f"hydra.sweep.dir={sweep}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    for job, loss in (("0", "wgan_gp"), ("1", "bce")):
        assert (sweep / job / "checkpoints" / "last.ckpt").is_file()
        overrides = yaml.safe_load((sweep / job / ".hydra" / "overrides.yaml").read_text())
        assert f"loss={loss}" in overrides


def test_jobs_of_one_multirun_share_a_wandb_group(tmp_path):
    from conftest import CONF_DIR
    from hydra import compose, initialize_config_dir
    from hydra.core.hydra_config import HydraConfig

    from stylegan.loggers import multirun_group

    groups = []
    for job in (0, 1):
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            cfg = compose(
                "train",
                [
                    f"hydra.sweep.dir={tmp_path / 'sweep'}",
                    f"hydra.job.num={job}",
                    "hydra.mode=MULTIRUN",
                ],
                return_hydra_config=True,
            )
        HydraConfig.instance().set_config(cfg)
        groups.append(multirun_group())
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("train", ["hydra.mode=RUN"], return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)
    single = multirun_group()
    HydraConfig.instance().cfg = None  # leave no Hydra run behind for later tests
    assert groups[0] == groups[1] and groups[0] and "sweep" in groups[0]
    assert single is None
