"""Experiment tracking: offline W&B, the FID callback and CLI, multirun and Optuna sweeps."""

import csv
import os

import pytest
import yaml
from conftest import run_cli as run

from train import train

FAST_FID = [
    "callbacks.fid.feature_network=tiny",
    "callbacks.fid.num_images=32",
    "callbacks.fid.batch_size=16",
]


def final_fid(run_dir) -> float:
    """The FID a run ended with: the last ``metrics/fid`` in its CSV log (what train() returns)."""
    (path,) = run_dir.glob("csv/version_*/metrics.csv")
    rows = list(csv.DictReader(path.open()))
    return [float(r["metrics/fid"]) for r in rows if r.get("metrics/fid")][-1]


def trial_params(run_dir, names) -> dict:
    """The values a sweep job ran with for the swept ``names`` (from its overrides.yaml)."""
    overrides = yaml.safe_load((run_dir / ".hydra" / "overrides.yaml").read_text())
    values = dict(item.split("=", 1) for item in overrides)
    return {name: yaml.safe_load(values[name]) for name in names}


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
        "stage.total_kimg=0.3",
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

    def scripted_metrics(*args, **kwargs):
        result = metrics(*args, **kwargs)
        assert result["fid"] >= 0  # the real value, before it is replaced
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


def test_fid_callback_measures_against_the_held_out_images(train_config, monkeypatch, capsys):
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
    cfg = train_config(
        "stage.total_kimg=0.064",
        "data.holdout=100",  # the last 100 of the sample; the smoke run trains on the first 512
        "callbacks.fid.at_train_end=true",
        *FAST_FID,
    )
    fid = train(cfg)
    assert fid is not None
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


def test_fid_cli_prints_the_value_and_image_count(smoke_run, celeba_root):
    result = run(
        "fid.py",
        f"ckpt={smoke_run / 'generator.pt'}",
        f"data.root={celeba_root}",
        "data.limit=512",
        f"paths.cache_dir={smoke_run.parent / 'cache'}",
        "feature_network=tiny",
        "num_images=64",
        f"hydra.run.dir={smoke_run.parent / 'fid'}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    line = next(x for x in result.stdout.splitlines() if x.startswith("FID "))
    assert "64 generated vs 64 real images at 32px" in line
    assert float(line.split()[1]) > 0


def test_fid_cli_on_held_out_images_prints_the_real_vs_real_floor(smoke_run, celeba_root):
    result = run(
        "fid.py",
        f"ckpt={smoke_run / 'generator.pt'}",
        f"data.root={celeba_root}",
        "data.holdout=100",
        "data.subset=holdout",
        f"paths.cache_dir={smoke_run.parent / 'cache'}",
        "feature_network=tiny",
        "num_images=64",
        f"hydra.run.dir={smoke_run.parent / 'fid-holdout'}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    line = next(x for x in result.stdout.splitlines() if x.startswith("FID "))
    assert "64 generated vs 64 real images at 32px" in line
    fid = float(line.split()[1])
    floor = float(line.rsplit("real-vs-real floor ", 1)[1].rstrip(")"))
    # Real faces score far closer to held-out real faces than a 2.5-kimg tiny model does.
    assert 0 < floor < fid


def test_fid_cli_bad_checkpoint_is_one_line_error(tmp_path):
    result = run("fid.py", f"ckpt={tmp_path / 'nope.pt'}", f"hydra.run.dir={tmp_path}")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("error: checkpoint not found")


@pytest.mark.slow
def test_multirun_runs_each_loss_in_its_own_directory(tmp_path, celeba_root, smoke_run):
    sweep = tmp_path / "sweep"
    result = run(
        "train.py",
        "-m",
        "loss=wgan_gp,bce",
        "experiment=smoke",
        "logger=csv",
        "stage.total_kimg=0.3",
        f"data.root={celeba_root}",
        f"paths.cache_dir={smoke_run.parent / 'cache'}",
        f"hydra.sweep.dir={sweep}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    for job, loss in (("0", "wgan_gp"), ("1", "bce")):
        assert (sweep / job / "checkpoints" / "last.ckpt").is_file()
        overrides = yaml.safe_load((sweep / job / ".hydra" / "overrides.yaml").read_text())
        assert f"loss={loss}" in overrides


@pytest.mark.slow
def test_optuna_sweep_minimizes_the_final_fid(tmp_path, celeba_root, smoke_run):
    sweep = tmp_path / "optuna"
    result = run(
        "train.py",
        "-m",
        "hparams_search=optuna",
        "hydra.sweeper.n_trials=2",
        "experiment=smoke",
        "logger=csv",
        "stage.total_kimg=0.2",
        *FAST_FID,
        f"data.root={celeba_root}",
        f"paths.cache_dir={smoke_run.parent / 'cache'}",
        f"hydra.sweep.dir={sweep}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    results = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    assert sorted(p.name for p in sweep.iterdir() if p.is_dir()) == ["0", "1"]
    fids = {job: final_fid(sweep / job) for job in ("0", "1")}
    assert fids["0"] != fids["1"]  # different hyperparameters, different FIDs
    best_job = min(fids, key=fids.get)
    assert results["best_value"] == pytest.approx(fids[best_job], rel=1e-6)
    assert results["best_params"] == trial_params(sweep / best_job, results["best_params"])
    assert {"training.lr_multiplier", "training.style_mixing_prob"} <= set(results["best_params"])


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
