"""Training end to end through ``train(cfg)`` and the CLI: progressive growing on the CelebA
sample, outputs of a run, resume after a kill, precision and loss variants, bad input."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import ROOT, compose_config, run_cli

from stylegan.checkpoints import CHECKPOINT_FORMAT, atomic_torch_save, load_generator
from stylegan.errors import ConfigError
from stylegan.networks import DCGANDiscriminator, Generator
from train import train

TINY = dict(z_dim=16, w_dim=16, mapping_layers=2, channel_base=128, channel_max=16)


def read_progress(ckpt: Path) -> dict:
    return torch.load(ckpt, map_location="cpu", weights_only=False)["stylegan"]["progress"]


# ---------------------------------------------------------------------------- configuration
@pytest.mark.parametrize(
    "experiment", sorted(p.stem for p in (ROOT / "conf" / "experiment").glob("*.yaml"))
)
def test_every_experiment_config_composes_and_builds_its_schedule(experiment):
    from train import build_schedule

    cfg = compose_config("train", [f"experiment={experiment}", "data.root=/x"])
    schedule = build_schedule(cfg.stage)
    assert schedule.final_resolution == cfg.stage.resolution
    assert cfg.model.generator.resolution == cfg.stage.resolution


@pytest.mark.parametrize("stage", [8, 16, 32, 64, 128, 256, 512, 1024])
def test_stage_presets_follow_the_paper_schedule(stage):
    from train import build_schedule

    schedule = build_schedule(compose_config("train", [f"stage={stage}px"]).stage)
    assert schedule.resolutions[0] == 8 and schedule.resolutions[-1] == stage
    assert (schedule.fade_kimg, schedule.stable_kimg) == (600, 600)
    assert schedule.images_to_reach_final() <= schedule.total_images


def test_wgan_gp_with_the_batchnorm_discriminator_is_refused():
    from stylegan.module import StyleGANModule

    G = Generator(resolution=64, **TINY)
    with pytest.raises(ConfigError, match="loss=bce"):
        StyleGANModule(generator=G, discriminator=DCGANDiscriminator(resolution=64))


# ---------------------------------------------------------------------------- short runs
def _parameters(module: torch.nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in module.parameters()]


@pytest.mark.parametrize(
    "overrides",
    [
        ["loss=wgan_gp"],
        ["loss=bce", "loss.r1_gamma=10", "loss.r1_interval=2"],
        ["loss=wgan_gp", "trainer.precision=bf16-mixed"],
    ],
    ids=["wgan_gp", "bce_r1", "bf16"],
)
def test_a_few_steps_of_each_loss_change_g_and_d(train_config, tmp_path, overrides, monkeypatch):
    import train as train_module

    captured = {}
    original = train_module.build_module

    def capture(cfg, schedule):
        module = original(cfg, schedule)
        captured["module"] = module
        captured["g0"] = _parameters(module.generator)
        captured["d0"] = _parameters(module.discriminator)
        return module

    monkeypatch.setattr(train_module, "build_module", capture)
    cfg = train_config("stage.total_kimg=0.064", "data.limit=64", *overrides)
    train(cfg)
    module = captured["module"]
    assert module.images_seen == 64
    for before, after in (
        (captured["g0"], module.generator),
        (captured["d0"], module.discriminator),
    ):
        changed = [not torch.equal(b, a) for b, a in zip(before, after.parameters(), strict=True)]
        assert any(changed)
        assert all(torch.isfinite(p).all() for p in after.parameters())
    # The EMA generator moved towards G but is not G.
    ema = list(module.generator_ema.parameters())
    assert any(
        not torch.equal(e, g) for e, g in zip(ema, module.generator.parameters(), strict=True)
    )


def test_fp16_penalties_receive_the_grad_scalers_scale(train_config, monkeypatch):
    """Lightning turns 16-mixed into bf16 on a CPU, so hand it the fp16 plugin with a real
    GradScaler: the gradient penalty must be computed with the scaler's scale (not 1)."""
    from lightning.pytorch.plugins.precision import MixedPrecision

    import train as train_module
    from stylegan import losses

    scales = []
    penalty = losses.gradient_penalty

    def spy(*args, grad_scale=1.0, **kwargs):
        scales.append(grad_scale)
        return penalty(*args, grad_scale=grad_scale, **kwargs)

    monkeypatch.setattr(losses, "gradient_penalty", spy)
    instantiate = train_module.instantiate

    def with_fp16_plugin(conf, **kwargs):
        if "plugins" in kwargs:
            scaler = torch.amp.GradScaler("cpu")
            kwargs["plugins"] = [*kwargs["plugins"], MixedPrecision("16-mixed", "cpu", scaler)]
            kwargs["precision"] = None
        return instantiate(conf, **kwargs)

    monkeypatch.setattr(train_module, "instantiate", with_fp16_plugin)
    captured = {}
    build_module = train_module.build_module
    monkeypatch.setattr(
        train_module,
        "build_module",
        lambda cfg, schedule: captured.setdefault("m", build_module(cfg, schedule)),
    )
    train(train_config("stage.total_kimg=0.032", "data.limit=64", "loss=wgan_gp"))
    assert len(scales) == 2 and all(s > 1 for s in scales)
    module = captured["m"]
    assert all(torch.isfinite(p).all() for p in module.discriminator.parameters())
    assert all(torch.isfinite(p).all() for p in module.generator.parameters())


def test_seed_preset_trains_non_progressively_with_the_dcgan_discriminator(train_config, tmp_path):
    cfg = train_config(
        "experiment=seed_dcgan64",
        "model=cpu",
        "trainer=cpu",
        "stage.total_kimg=0.032",
        "stage.batch_size={64: 16}",
        "data.limit=64",
        "data.num_workers=0",
        "callbacks.samples.num_images=4",
        "callbacks.progress_bar=null",
    )
    train(cfg)
    progress = read_progress(tmp_path / "checkpoints" / "last.ckpt")
    assert (progress["resolution"], progress["alpha"], progress["images_seen"]) == (64, 1.0, 32)
    assert sorted(p.name for p in (tmp_path / "samples").glob("kimg*.png")) == [
        "kimg00000.032_64px.png"
    ]


# ---------------------------------------------------------------------------- the smoke run
def test_smoke_run_grows_to_32px_and_writes_its_outputs(smoke_run):
    ckpts = smoke_run / "checkpoints"
    progress = read_progress(ckpts / "last.ckpt")
    assert progress["resolution"] == 32
    assert progress["alpha"] == 1.0
    assert progress["images_seen"] >= 2500
    # Grids at the end of every resolution and every kimg, named by kimg and resolution.
    grids = sorted(p.name for p in (smoke_run / "samples").glob("kimg*.png"))
    assert {name.split("_")[1] for name in grids} == {"8px.png", "16px.png", "32px.png"}
    assert {p.name for p in (smoke_run / "samples").glob("reals_*.png")} == {
        "reals_8px.png",
        "reals_16px.png",
        "reals_32px.png",
    }
    # Periodic checkpoints kept, no temporary files left behind.
    assert len(list(ckpts.glob("kimg*.ckpt"))) >= 3
    assert not [p for p in ckpts.iterdir() if p.name.startswith(".")]
    # The exported EMA generator and last.ckpt give the same generator.
    from_export, info = load_generator(smoke_run / "generator.pt")
    from_ckpt, ckpt_info = load_generator(ckpts / "last.ckpt")
    assert info["resolution"] == ckpt_info["resolution"] == 32
    z = torch.randn(2, from_export.z_dim)
    assert torch.equal(
        from_export(z, noise_mode="const", resolution=32),
        from_ckpt(z, noise_mode="const", resolution=32),
    )


def test_smoke_run_logs_progress_and_losses(smoke_run):
    import csv

    rows = list(csv.DictReader((smoke_run / "csv" / "version_0" / "metrics.csv").open()))
    keys = set(rows[0])
    assert {"loss/d", "loss/g", "loss/gp", "progress/resolution", "progress/alpha"} <= keys
    assert {"progress/kimg"} <= keys
    resolutions = {float(r["progress/resolution"]) for r in rows if r["progress/resolution"]}
    assert resolutions == {8.0, 16.0, 32.0}
    alphas = [float(r["progress/alpha"]) for r in rows if r["progress/alpha"]]
    assert any(0 < a < 1 for a in alphas)


# ---------------------------------------------------------------------------- resume
@pytest.mark.slow
def test_a_killed_run_resumes_to_the_same_progressive_state(smoke_run, tmp_path, celeba_root):
    """SIGKILL the CLI part-way through the 32px fade-in, resume from last.ckpt, and end in the
    same progressive state as the uninterrupted smoke run."""
    run_dir = tmp_path / "run"
    common = [
        "experiment=smoke",
        "logger=none",
        f"data.root={celeba_root}",
        f"paths.cache_dir={smoke_run.parent / 'cache'}",
        "callbacks.checkpoint.every_kimg=0.2",
        f"hydra.run.dir={run_dir}",
    ]
    proc = subprocess.Popen(
        [sys.executable, "train.py", *common],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
    )
    last = run_dir / "checkpoints" / "last.ckpt"
    deadline = time.time() + 300
    try:
        while time.time() < deadline and proc.poll() is None:
            if last.exists() and read_progress(last)["images_seen"] > 1600:
                break
            time.sleep(0.2)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    progress = read_progress(last)
    assert progress["resolution"] == 32 and 0 < progress["alpha"] < 1, progress

    resumed = run_cli("train.py", *common, f"ckpt_path={last}")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    final = read_progress(last)
    reference = read_progress(smoke_run / "checkpoints" / "last.ckpt")
    assert final == reference


def test_resume_restores_state_before_the_first_step(smoke_run, train_config, tmp_path):
    """A finished run resumed from its last.ckpt does no more steps and keeps its state."""
    last = smoke_run / "checkpoints" / "last.ckpt"
    cfg = train_config(f"ckpt_path={last}", "callbacks.samples=null")
    train(cfg)
    assert read_progress(tmp_path / "checkpoints" / "last.ckpt") == read_progress(last)


def test_a_checkpoint_of_another_format_is_refused_in_one_line(smoke_run, train_config, tmp_path):
    """``checkpoint["stylegan"]["format"]`` is checked on load: resuming from, or loading the
    generator of, a checkpoint of another format is a one-line ConfigError, not a misread."""
    last = smoke_run / "checkpoints" / "last.ckpt"
    payload = torch.load(last, map_location="cpu", weights_only=False)
    payload["stylegan"]["format"] = CHECKPOINT_FORMAT + 1
    foreign = tmp_path / "foreign.ckpt"
    torch.save(payload, foreign)
    resume = train_config(f"ckpt_path={foreign}", "callbacks.samples=null")
    message = rf"format {CHECKPOINT_FORMAT + 1}, but this stylegan reads format {CHECKPOINT_FORMAT}"
    for load in (lambda: load_generator(foreign), lambda: train(resume)):
        with pytest.raises(ConfigError, match=message) as error:
            load()
        assert "\n" not in str(error.value)
    assert not (tmp_path / "checkpoints" / "last.ckpt").exists()  # nothing trained or written


# ---------------------------------------------------------------------------- atomic writes
def test_an_interrupted_checkpoint_write_leaves_the_old_file_intact(tmp_path, monkeypatch):
    target = tmp_path / "last.ckpt"
    atomic_torch_save({"v": 1}, target)

    def crash(obj, f, *args, **kwargs):
        Path(f).write_bytes(b"partial")  # half-written, then the process is interrupted
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(KeyboardInterrupt):
        atomic_torch_save({"v": 2}, target)
    monkeypatch.undo()
    assert torch.load(target, weights_only=False) == {"v": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]


# ---------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["data.root=/nonexistent/celeba"], "/nonexistent/celeba"),
        (["ckpt_path=/nonexistent/last.ckpt"], "ckpt_path"),
        (["stage.start_resolution=48"], "power of two"),
        (["loss=wgan_gp", "model/discriminator=dcgan", "stage=64px"], "loss=bce"),
        (["data.split=bogus"], "data.split must be"),
        (["model.generator.z_dim=0"], "z_dim must be a positive integer"),
    ],
    ids=["missing-data", "missing-ckpt", "bad-stage", "gp-with-batchnorm", "split", "z-dim"],
)
def test_bad_input_is_one_line_error_not_a_traceback(args, message, tmp_path):
    result = run_cli(
        "train.py", "experiment=smoke", "logger=none", f"hydra.run.dir={tmp_path}", *args
    )
    assert result.returncode == 2
    lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
    assert lines[-1].startswith("error: ") and message in lines[-1], result.stderr[-2000:]
    assert "Traceback" not in result.stderr


# ---------------------------------------------------------------------------- DDP
@pytest.mark.slow
def test_ddp_with_two_cpu_processes_trains_and_grows(tmp_path, celeba_root, smoke_run):
    """The ddp preset on 2 CPU processes (gloo): the global batch is split, progress counts
    both processes' images, one set of outputs is written."""
    run_dir = tmp_path / "ddp"
    result = run_cli(
        "train.py",
        "experiment=smoke",
        "trainer=ddp",
        "trainer.accelerator=cpu",
        "trainer.devices=2",
        "stage.total_kimg=1.2",
        "logger=none",
        f"data.root={celeba_root}",
        f"paths.cache_dir={smoke_run.parent / 'cache'}",
        f"hydra.run.dir={run_dir}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert (run_dir / "train_ddp_process_1.log").is_file()  # the second rank really ran
    progress = read_progress(run_dir / "checkpoints" / "last.ckpt")
    assert progress["resolution"] == 16 and progress["images_seen"] == 1200
    _, info = load_generator(run_dir / "generator.pt")
    assert info["resolution"] == 16
