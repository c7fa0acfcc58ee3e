"""The training step's mechanics: faded reals, channels_last, lazy regularization and its Adam
correction, R1 on the loss's own D(real) pass, fp32 state under bf16, the EMA update, the
per-loss lr cap, and the official style-mixing / w_avg behaviour."""

import pytest
import torch
from conftest import compose_config
from torch import nn

from stylegan import losses
from stylegan.module import StyleGANModule
from stylegan.networks import Discriminator, Generator
from stylegan.networks.layers import EqualizedConv2d, fade_in_reals
from train import build_schedule, train

TINY = dict(channel_base=128, channel_max=16)


def official_process_reals(x: torch.Tensor, alpha: float) -> torch.Tensor:
    """NVlabs/stylegan ``process_reals``' FadeLOD, written as the TF code does it:
    reshape to 2×2 cells, mean, tile, then ``lerp(x, y, lod - floor(lod))`` with that fraction
    being ``1 - alpha`` during a fade-in."""
    N, C, H, W = x.shape
    y = x.reshape(N, C, H // 2, 2, W // 2, 2).mean(dim=(3, 5), keepdim=True)
    y = y.expand(N, C, H // 2, 2, W // 2, 2).reshape(N, C, H, W)
    return x + (y - x) * (1.0 - alpha)


@pytest.mark.parametrize("alpha", [0.0, 0.5, 1.0])
def test_faded_reals_equal_the_official_formula(alpha):
    x = torch.randn(4, 3, 16, 16)
    torch.testing.assert_close(fade_in_reals(x, alpha), official_process_reals(x, alpha))


def test_faded_reals_at_alpha_zero_are_the_coarse_level():
    x = torch.randn(2, 3, 8, 8)
    coarse = fade_in_reals(x, 0.0)
    # Every 2×2 cell holds one value: the mean of that cell.
    cells = coarse.reshape(2, 3, 4, 2, 4, 2)
    assert torch.equal(cells, cells[:, :, :, :1, :, :1].expand_as(cells))
    assert fade_in_reals(x, 1.0) is x


# ---------------------------------------------------------------------------- channels_last
def _conv_inputs_layout(module: nn.Module, run) -> list[bool]:
    """Whether each multi-channel conv input (C > 1, H > 1) was channels_last during ``run``."""
    seen: list[bool] = []

    def hook(_, args):
        x = args[0]
        if x.ndim == 4 and x.shape[1] > 1 and x.shape[2] > 1:
            seen.append(x.is_contiguous(memory_format=torch.channels_last))

    handles = [
        m.register_forward_pre_hook(hook)
        for m in module.modules()
        if isinstance(m, EqualizedConv2d) or type(m).__name__ == "Blur"
    ]
    try:
        run()
    finally:
        for h in handles:
            h.remove()
    return seen


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_channels_last_matches_nchw_and_keeps_its_layout_through_g_and_d(dtype):
    torch.manual_seed(0)
    G = Generator(resolution=32, z_dim=16, w_dim=16, **TINY)
    D = Discriminator(resolution=32, **TINY)
    G_cl = Generator(resolution=32, z_dim=16, w_dim=16, **TINY)
    D_cl = Discriminator(resolution=32, **TINY)
    G_cl.load_state_dict(G.state_dict())
    D_cl.load_state_dict(D.state_dict())
    G_cl.to(memory_format=torch.channels_last)
    D_cl.to(memory_format=torch.channels_last)
    z = torch.randn(4, 16)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == torch.bfloat16):
        img = G(z, resolution=32, alpha=0.5, noise_mode="const")
        img_cl = G_cl(z, resolution=32, alpha=0.5, noise_mode="const")
        logits = D(img, resolution=32, alpha=0.5)
        logits_cl = D_cl(img_cl, resolution=32, alpha=0.5)
        layouts = _conv_inputs_layout(
            G_cl, lambda: G_cl(z, resolution=32, alpha=0.5, noise_mode="random")
        )
        layouts += _conv_inputs_layout(D_cl, lambda: D_cl(img_cl, resolution=32, alpha=0.5))
    tol = dict(atol=1e-4, rtol=1e-4) if dtype == torch.float32 else dict(atol=0.1, rtol=0.05)
    torch.testing.assert_close(img_cl.float(), img.float(), **tol)
    torch.testing.assert_close(logits_cl.float(), logits.float(), **tol)
    assert img_cl.is_contiguous(memory_format=torch.channels_last)
    assert layouts and all(layouts), f"{layouts.count(False)} conv inputs fell back to NCHW"


# ---------------------------------------------------------------------------- module, no trainer
def _module(**kwargs) -> StyleGANModule:
    torch.manual_seed(0)
    G = Generator(resolution=16, z_dim=16, w_dim=16, **TINY)
    D = Discriminator(resolution=16, **TINY)
    return StyleGANModule(generator=G, discriminator=D, **kwargs)


@pytest.mark.parametrize(
    "kwargs, ratio",
    [
        (dict(loss="wgan_gp", gp_interval=1), 1.0),
        (dict(loss="wgan_gp", gp_interval=4), 0.8),
        (dict(loss="bce", r1_gamma=10.0, r1_interval=16), 16 / 17),
        (dict(loss="bce", r1_gamma=0.0, r1_interval=16), 1.0),  # no R1: nothing is lazy
    ],
)
def test_lazy_regularization_scales_d_adam_lr_and_betas(kwargs, ratio):
    module = _module(lr=0.002, adam_betas=(0.5, 0.99), **kwargs)
    opt_g, opt_d = module.configure_optimizers()
    assert opt_g.param_groups[0]["lr"] == pytest.approx(0.002)
    assert opt_g.param_groups[0]["betas"] == pytest.approx((0.5, 0.99))
    assert opt_d.param_groups[0]["lr"] == pytest.approx(0.002 * ratio)
    assert opt_d.param_groups[0]["betas"] == pytest.approx((0.5**ratio, 0.99**ratio))


def test_ema_update_is_the_half_life_lerp_and_copies_only_w_avg():
    module = _module(ema_half_life_kimg=1.0)
    G, ema = module.generator, module.generator_ema
    with torch.no_grad():
        for p in G.parameters():
            p.add_(torch.randn_like(p))
        G.w_avg.normal_()
        G.synthesis.blocks["8"].epilogue0.noise.noise_const.add_(1.0)
    before = [p.clone() for p in ema.parameters()]
    noise_before = ema.synthesis.blocks["8"].epilogue0.noise.noise_const.clone()
    module.update_ema(500)  # half a half-life: beta = 0.5 ** 0.5
    beta = 0.5**0.5
    for b, e, g in zip(before, ema.parameters(), G.parameters(), strict=True):
        torch.testing.assert_close(e, b * beta + g * (1 - beta))
    assert torch.equal(ema.w_avg, G.w_avg)
    assert torch.equal(ema.synthesis.blocks["8"].epilogue0.noise.noise_const, noise_before)


def test_ema_rampup_caps_the_half_life_by_the_images_seen():
    module = _module(ema_half_life_kimg=10.0, ema_rampup=0.05)
    G, ema = module.generator, module.generator_ema
    with torch.no_grad():
        for p in G.parameters():
            p.add_(1.0)
    before = [p.clone() for p in ema.parameters()]
    module.images_seen = 1000 - 32  # after this batch: 1000 images, half-life 50 images
    module.update_ema(32)
    beta = 0.5 ** (32 / 50)
    for b, e, g in zip(before, ema.parameters(), G.parameters(), strict=True):
        torch.testing.assert_close(e, b * beta + g * (1 - beta))


def test_every_training_mapping_pass_updates_w_avg_and_mixing_uses_one_crossover(monkeypatch):
    import stylegan.module as module_file

    module = _module(style_mixing_prob=1.0)
    module.resolution = 16
    crossovers = []
    mix = module_file.mix_styles

    def spy(ws1, ws2, crossover):
        crossovers.append(crossover)
        return mix(ws1, ws2, crossover)

    monkeypatch.setattr(module_file, "mix_styles", spy)
    w_avg = module.generator.w_avg.clone()
    with torch.no_grad():  # as in the D step
        fake = module._generate(8)
    assert fake.shape == (8, 3, 16, 16)
    assert not torch.equal(module.generator.w_avg, w_avg)
    # One crossover layer for the whole minibatch, in 1 .. num_ws(16px) - 1, as official.
    assert len(crossovers) == 1 and isinstance(crossovers[0], int)
    assert 1 <= crossovers[0] < module.generator.num_ws_at(16)


# ---------------------------------------------------------------------------- lr per loss
@pytest.mark.parametrize("loss, expected", [("wgan_gp", 0.002), ("bce", 0.003)])
def test_the_lr_table_is_capped_per_loss(loss, expected):
    cfg = compose_config("train", [f"loss={loss}", "stage=1024px"])
    schedule = build_schedule(cfg.stage, cfg.training.lr_multiplier, cfg.loss.get("max_lr"))
    assert schedule.state_at(schedule.total_images).lr == pytest.approx(expected)
    assert schedule.state_at(0).lr == pytest.approx(0.001)


# ---------------------------------------------------------------------------- real short runs
def _capture_module(monkeypatch) -> dict:
    import train as train_module

    captured: dict = {}
    build_module = train_module.build_module

    def capture(cfg, schedule):
        captured["module"] = build_module(cfg, schedule)
        return captured["module"]

    monkeypatch.setattr(train_module, "build_module", capture)
    return captured


@pytest.mark.parametrize("alpha", [1.0, 0.4])  # stable, and fading in (two fromRGB paths)
def test_the_joint_real_fake_pass_gives_the_losses_of_two_separate_passes(alpha):
    """D's step runs reals and fakes through one D call; its losses and scores are those of
    D(real) and D(fake) called apart (minibatch stddev never groups a real with a fake)."""
    module = _module(loss="wgan_gp", gp_interval=2)
    module._d_steps = 1  # not a penalty step: the penalty's random interpolation stays out
    module.resolution, module.alpha = 16, alpha
    torch.manual_seed(1)
    real = torch.randn(8, 3, 16, 16).contiguous(memory_format=torch.channels_last)
    fake = torch.randn(8, 3, 16, 16)
    calls = []
    handle = module.discriminator.register_forward_hook(lambda m, i, o: calls.append(i[0].shape))
    assert module._joint_real_fake_pass  # the StyleGAN discriminator supports it
    joint_total, joint = module._discriminator_loss(real, fake)
    assert calls == [torch.Size([16, 3, 16, 16])]  # one call over both
    module.joint_d_pass_max_batch = 15  # 8 reals + 8 fakes are more: two calls
    apart_total, apart = module._discriminator_loss(real, fake)
    assert calls[1:] == [torch.Size([8, 3, 16, 16])] * 2
    handle.remove()
    torch.testing.assert_close(joint_total, apart_total, rtol=1e-5, atol=1e-6)
    for key in ("scores/real", "scores/fake", "loss/d", "loss/drift"):
        torch.testing.assert_close(joint[key], apart[key], rtol=1e-5, atol=1e-6)


def test_a_batchnorm_discriminator_keeps_reals_and_fakes_in_separate_passes():
    from stylegan.networks.dcgan import DCGANDiscriminator

    G = Generator(resolution=64, z_dim=16, w_dim=16, **TINY)
    D = DCGANDiscriminator(resolution=64)
    module = StyleGANModule(generator=G, discriminator=D, loss="bce", r1_gamma=0.0)
    assert not module._joint_real_fake_pass  # one pass would mix their BatchNorm statistics


def test_lazy_gradient_penalty_runs_every_nth_d_step_scaled_by_n(train_config, monkeypatch):
    calls = []
    penalty = losses.gradient_penalty

    def spy(*args, **kwargs):
        value = penalty(*args, **kwargs)
        calls.append(value.detach())
        return value

    monkeypatch.setattr(losses, "gradient_penalty", spy)
    captured = _capture_module(monkeypatch)
    # 8 steps of 8 images at 8px.
    cfg = train_config(
        "stage.total_kimg=0.064", "data.limit=64", "++stage.batch_size.8=8", "loss.gp_interval=4"
    )
    train(cfg)
    module = captured["module"]
    assert module.images_seen == 64 and module._d_steps == 8
    assert len(calls) == 2  # D steps 0 and 4
    _, opt_d = module.trainer.optimizers
    assert opt_d.param_groups[0]["lr"] == pytest.approx(module.lr * 0.8)


@pytest.mark.parametrize("loss", ["wgan_gp", "bce"])
def test_a_lazy_penalty_step_adds_the_penalty_times_n_to_ds_total_loss(
    train_config, monkeypatch, loss
):
    """At a lazy penalty step D's total loss (what is back-propagated) is
    ``wgan + drift_weight * drift + gp_weight * gp * N`` (WGAN-GP), or
    ``logistic + (gamma / 2) * r1 * N`` (R1), computed here from D's logits and the penalty."""
    n = 4
    spied = {"logits": [], "penalty": [], "backward": []}

    def spy(name, key):
        real_fn = getattr(losses, name)

        def wrapper(*args, **kwargs):
            value = real_fn(*args, **kwargs)
            spied[key].append(args[:2] if key == "logits" else value.detach())
            return value

        monkeypatch.setattr(losses, name, wrapper)

    spy("wgan_d_loss" if loss == "wgan_gp" else "logistic_d_loss", "logits")
    spy("gradient_penalty" if loss == "wgan_gp" else "r1_penalty", "penalty")
    import train as train_module

    build_module = train_module.build_module

    def with_backward_spy(cfg, schedule):
        module = build_module(cfg, schedule)
        backward = module.manual_backward

        def recording(value, *args, **kwargs):
            spied["backward"].append(value.detach())
            return backward(value, *args, **kwargs)

        module.manual_backward = recording
        return module

    monkeypatch.setattr(train_module, "build_module", with_backward_spy)
    interval = "loss.gp_interval" if loss == "wgan_gp" else "loss.r1_interval"
    cfg = train_config(
        "stage.total_kimg=0.064", "data.limit=64", "++stage.batch_size.8=8", f"loss={loss}",
        f"{interval}={n}",
    )  # fmt: skip
    train(cfg)
    d_totals = spied["backward"][0::2]  # per step: D's backward (n_critic = 1), then G's
    assert len(d_totals) == len(spied["logits"]) == 8 and len(spied["penalty"]) == 2
    penalties = iter(spied["penalty"])
    for step, (total, (real, fake)) in enumerate(zip(d_totals, spied["logits"], strict=True)):
        real, fake = real.detach(), fake.detach()
        if loss == "wgan_gp":
            main = fake.mean() - real.mean()
            expected = main + cfg.loss.drift_weight * real.square().mean()
            weight = cfg.loss.gp_weight
        else:
            main = (
                torch.nn.functional.softplus(-real).mean()
                + torch.nn.functional.softplus(fake).mean()
            )
            expected = main
            weight = cfg.loss.r1_gamma / 2
        if step % n == 0:  # a lazy penalty step: the penalty, scaled by N
            penalty = weight * next(penalties) * n
            assert penalty > 1e-3 * abs(main)  # large enough to be told from a missing *N
            expected = expected + penalty
        torch.testing.assert_close(total, expected, rtol=1e-5, atol=1e-6)


def test_r1_reuses_the_d_real_pass_and_is_the_squared_input_gradient(train_config, monkeypatch):
    captured = _capture_module(monkeypatch)
    forwards = []
    counting = [True]
    cfg = train_config(
        "stage.total_kimg=0.032", "data.limit=64", "++stage.batch_size.8=16", "loss=bce"
    )
    import train as train_module

    build_module = train_module.build_module

    def count(*_):
        if counting[0]:
            forwards.append(1)

    def with_counter(cfg, schedule):
        module = build_module(cfg, schedule)
        module.discriminator.register_forward_hook(count)
        return module

    monkeypatch.setattr(train_module, "build_module", with_counter)
    r1_values, by_hand = [], []
    r1 = losses.r1_penalty

    def spy(real_logits, real, **kwargs):
        value = r1(real_logits, real, **kwargs)
        r1_values.append(value.detach())
        # R1 by hand on the same reals and the same (not yet stepped) D: sum over pixels of
        # (dD(x)/dx)^2, averaged over the batch.
        module = captured["module"]
        counting[0] = False
        x = real.detach().clone().requires_grad_(True)
        logits = module.discriminator(x, resolution=module.resolution, alpha=module.alpha)
        (grad,) = torch.autograd.grad(logits.sum(), x)
        counting[0] = True
        by_hand.append(grad.square().sum(dim=(1, 2, 3)).mean())
        return value

    monkeypatch.setattr(losses, "r1_penalty", spy)
    train(cfg)
    module = captured["module"]
    assert module.r1_gamma == 10.0 and module.r1_interval == 1  # the official default
    steps = module._d_steps
    assert steps == 2 and len(r1_values) == len(by_hand) == steps
    for value, expected in zip(r1_values, by_hand, strict=True):
        assert value.item() == pytest.approx(expected.item(), rel=1e-4)
    # Per step: D(real) and D(fake) in the D step (R1 adds no forward), D(fake) in the G step.
    assert len(forwards) == 3 * steps


def test_bf16_keeps_weights_ema_and_adam_state_in_fp32_and_channels_last(train_config, monkeypatch):
    captured = _capture_module(monkeypatch)
    logged = []
    d_loss = StyleGANModule._discriminator_loss

    def spy(self, real, fake):
        total, logs = d_loss(self, real, fake)
        logged.append((total.dtype, fake.dtype))
        return total, logs

    monkeypatch.setattr(StyleGANModule, "_discriminator_loss", spy)
    train(train_config("stage.total_kimg=0.032", "data.limit=64", "trainer.precision=bf16-mixed"))
    module = captured["module"]
    assert all(total == torch.float32 for total, _ in logged)  # the loss is fp32
    assert any(fake == torch.bfloat16 for _, fake in logged)  # ... of bf16 activations
    networks = (module.generator, module.discriminator, module.generator_ema)
    for network in networks:
        assert all(p.dtype == torch.float32 for p in network.parameters())
        assert all(torch.isfinite(p).all() for p in network.parameters())
    for optimizer in module.trainer.optimizers:
        states = [v for s in optimizer.state.values() for v in s.values() if v.ndim > 0]
        assert states and all(v.dtype == torch.float32 for v in states)
    weight = module.discriminator.blocks["8"].conv0.weight
    assert weight.is_contiguous(memory_format=torch.channels_last)


# ---------------------------------------------------------------------------- CPU precision
@pytest.mark.parametrize("native, expected", [(True, "bf16-mixed"), (False, "32-true")])
def test_trainer_cpu_picks_bf16_only_where_the_cpu_has_it(monkeypatch, caplog, native, expected):
    from stylegan import precision

    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: native)
    monkeypatch.setattr(precision, "_fallback_announced", False)
    cfg = compose_config("train", ["trainer=cpu"])
    with caplog.at_level("WARNING", logger="stylegan.precision"):
        assert cfg.trainer.precision == expected
        # train.py resolves the config more than once (trainer, logged hyperparameters): one line.
        assert compose_config("train", ["trainer=cpu"]).trainer.precision == expected
    fallback = [r.getMessage() for r in caplog.records if "no native bf16" in r.getMessage()]
    assert len(fallback) == (0 if native else 1)
    # An explicit choice wins over the detection.
    cfg = compose_config("train", ["trainer=cpu", "trainer.precision=32-true"])
    assert cfg.trainer.precision == "32-true"


def test_this_machines_cpu_detection_agrees_with_its_cpu_flags():
    from pathlib import Path

    from stylegan.precision import cpu_has_native_bf16

    flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").is_file() else ""
    has_flag = any(flag in flags.split() for flag in ("avx512_bf16", "amx_bf16"))
    assert cpu_has_native_bf16() == has_flag
