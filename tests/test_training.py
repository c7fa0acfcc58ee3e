"""Training end to end through ``train(cfg)`` and the CLI: progressive growing on the CelebA
sample, outputs of a run, resume (a SIGKILLed CLI run resumed: tests/test_fault_tolerance.py),
precision and loss variants, bad input."""

from pathlib import Path

import pytest
import torch
from conftest import ROOT, compose_config, main_in_process, run_cli

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


def _d_loss_by_hand(module, D, inputs: list[torch.Tensor]) -> torch.Tensor:
    """D's loss of the first D step, written out from the papers (not stylegan.losses): WGAN-GP
    with drift, or the logistic loss with R1 (scaled by the lazy interval, as on a lazy step)."""
    import torch.nn.functional as F

    def d(x):
        return D(x, resolution=module.resolution, alpha=module.alpha).float()

    def input_gradient(x):
        x = x.detach().clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(d(x).sum(), x, create_graph=True)
        return grad.flatten(1)

    real, fake = inputs[0], inputs[1]
    if module.loss == "wgan_gp":
        interpolates = inputs[2]
        gp = (input_gradient(interpolates).norm(dim=1) - 1).square().mean()
        real_logits = d(real)
        return (
            d(fake).mean()
            - real_logits.mean()
            + module.drift_weight * real_logits.square().mean()
            + module.gp_weight * module.gp_interval * gp
        )
    r1 = input_gradient(real).square().sum(dim=1).mean()
    loss = F.softplus(-d(real)).mean() + F.softplus(d(fake)).mean()
    return loss + module.r1_gamma / 2 * module.r1_interval * r1


def _assert_first_adam_step_descends(before, after, grads, lr: float, what: str) -> None:
    """Adam's first step with beta1 = 0 is -lr * g / (|g| + eps): every weight moves by about lr
    against the sign of its loss gradient."""
    agree = total = 0
    for b, a, g in zip(before, after, grads, strict=True):
        if g is None:  # a layer the step did not use (higher resolutions)
            assert torch.equal(a, b), what
            continue
        delta = (a - b).flatten()
        g = g.flatten()
        # At most lr, give or take the rounding of weights far from 0 (the mapping's are ~100).
        rounding = 2 * torch.finfo(torch.float32).eps * b.abs().flatten()
        assert (delta.abs() <= lr * 1.001 + rounding).all(), what
        clear = g.abs() > 1e-4 * g.abs().max()  # gradients clearly away from rounding noise
        agree += int((torch.sign(delta[clear]) == -torch.sign(g[clear])).sum())
        total += int(clear.sum())
    assert total > 100 and agree / total > 0.99, f"{what}: {agree} of {total} weights descend"


@pytest.mark.parametrize(
    "overrides",
    [
        ["loss=wgan_gp"],
        ["loss=bce", "loss.r1_gamma=10", "loss.r1_interval=2"],
        ["loss=wgan_gp", "trainer.precision=bf16-mixed"],
    ],
    ids=["wgan_gp", "bce_r1", "bf16"],
)
def test_the_first_d_and_g_steps_descend_their_losses(train_config, overrides, monkeypatch):
    """One training step. D's loss gradient is recomputed by hand from D's initial weights and the
    inputs D saw; G's from the fakes of the G step through the stepped D. Both Adam steps must go
    downhill on those gradients (a wrong-signed loss would go uphill)."""
    import copy

    import torch.nn.functional as F

    import train as train_module

    captured = {"d_inputs": [], "g_grads": None}
    original = train_module.build_module

    def capture(cfg, schedule):
        module = original(cfg, schedule)
        captured.update(module=module, D0=copy.deepcopy(module.discriminator))
        captured["g0"] = _parameters(module.generator)
        captured["d0"] = _parameters(module.discriminator)
        busy = []

        def record(D, args):
            x = args[0]
            if busy:
                return
            if x.grad_fn is None:  # D step: reals, fakes (no graph), interpolates (a leaf)
                captured["d_inputs"].append(x.detach().clone())
                return
            busy.append(1)  # G step: the fakes carry G's graph; G's loss by hand through D
            logits = D(x, resolution=module.resolution, alpha=module.alpha).float()
            loss = -logits.mean() if module.loss == "wgan_gp" else F.softplus(-logits).mean()
            captured["g_grads"] = torch.autograd.grad(
                loss, list(module.generator.parameters()), retain_graph=True, allow_unused=True
            )
            busy.clear()

        module.discriminator.register_forward_pre_hook(record)
        return module

    monkeypatch.setattr(train_module, "build_module", capture)
    train(train_config("stage.total_kimg=0.016", "data.limit=64", *overrides))
    module = captured["module"]
    assert module.images_seen == 16 and module._d_steps == 1
    assert len(captured["d_inputs"]) == (3 if module.loss == "wgan_gp" else 2)
    D0 = captured["D0"]
    d_grads = torch.autograd.grad(
        _d_loss_by_hand(module, D0, captured["d_inputs"]),
        list(D0.parameters()),
        allow_unused=True,
    )
    opt_g, opt_d = module.trainer.optimizers
    _assert_first_adam_step_descends(
        captured["d0"], _parameters(module.discriminator), d_grads,
        opt_d.param_groups[0]["lr"], "D",
    )  # fmt: skip
    _assert_first_adam_step_descends(
        captured["g0"], _parameters(module.generator), captured["g_grads"],
        opt_g.param_groups[0]["lr"], "G",
    )  # fmt: skip
    assert all(torch.isfinite(p).all() for p in module.parameters())
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
def test_resume_restores_state_before_the_first_step(
    smoke_run, train_config, tmp_path, monkeypatch
):
    """A finished run resumed from its last.ckpt does no more steps and keeps its state."""
    from stylegan.module import StyleGANModule

    steps = []
    training_step = StyleGANModule.training_step

    def counted(self, batch, batch_idx):
        steps.append(batch.shape[0])
        return training_step(self, batch, batch_idx)

    monkeypatch.setattr(StyleGANModule, "training_step", counted)
    last = smoke_run / "checkpoints" / "last.ckpt"
    cfg = train_config(f"ckpt_path={last}", "callbacks.samples=null")
    train(cfg)
    assert steps == []  # nothing left to train
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
def test_bad_input_is_one_line_error_not_a_traceback(args, message, tmp_path, monkeypatch, capsys):
    """train.py's main() in-process (the real command's one line: tests/test_config.py)."""
    import train as train_module

    status, lines = main_in_process(
        monkeypatch, capsys, train_module,
        "experiment=smoke", "logger=none", f"hydra.run.dir={tmp_path}", *args,
    )  # fmt: skip
    assert status == 2
    lines = [line for line in lines if line.strip()]
    assert lines[-1].startswith("error: ") and message in lines[-1], lines
    assert not any("Traceback" in line for line in lines), lines


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
        "stage.total_kimg=0.6",  # into the 16px fade-in (from 0.512 kimg)
        "logger=none",
        f"data.root={celeba_root}",
        f"paths.cache_dir={smoke_run.parent / 'cache'}",
        f"hydra.run.dir={run_dir}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert (run_dir / "train_ddp_process_1.log").is_file()  # the second rank really ran
    progress = read_progress(run_dir / "checkpoints" / "last.ckpt")
    assert progress["resolution"] == 16 and progress["images_seen"] == 608
    _, info = load_generator(run_dir / "generator.pt")
    assert info["resolution"] == 16
