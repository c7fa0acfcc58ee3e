"""Adaptive discriminator augmentation: differentiable transforms, p steered by r_t, p in the
checkpoint, and augment=none leaving D's inputs exactly as they were."""

import csv

import kornia.enhance as KE
import pytest
import torch
from conftest import compose_config

from stylegan.augment import DiscriminatorAugment, build_augment, scale_contrast
from stylegan.errors import ConfigError
from stylegan.module import StyleGANModule
from train import train

ONE_EACH = {
    "xflip": dict(rotate90=False, translate=0, brightness=0, contrast=0, saturation=0, hue=0,
                  cutout=0),
    "rotate90": dict(xflip=False, translate=0, brightness=0, contrast=0, saturation=0, hue=0,
                     cutout=0),
    "translate": dict(xflip=False, rotate90=False, brightness=0, contrast=0, saturation=0, hue=0,
                      cutout=0),
    "color": dict(xflip=False, rotate90=False, translate=0, cutout=0),
    "cutout": dict(xflip=False, rotate90=False, translate=0, brightness=0, contrast=0,
                   saturation=0, hue=0),
}  # fmt: skip


@pytest.fixture
def built_modules(monkeypatch) -> list[StyleGANModule]:
    """The modules that ``train()`` builds, in order (to look inside after training)."""
    import train as train_module

    built: list[StyleGANModule] = []
    build_module = train_module.build_module

    def capture(cfg, schedule):
        built.append(build_module(cfg, schedule))
        return built[-1]

    monkeypatch.setattr(train_module, "build_module", capture)
    return built


@pytest.mark.parametrize("name", list(ONE_EACH))
def test_each_transform_changes_images_and_passes_gradients(name):
    torch.manual_seed(0)
    augment = DiscriminatorAugment(mode="ada", initial_p=1.0, **ONE_EACH[name])
    assert len(augment.transforms) == 1
    x = (torch.rand(8, 3, 16, 16) * 2 - 1).requires_grad_(True)
    y = augment(x)
    assert y.shape == x.shape and not torch.equal(y, x)
    weights = torch.randn_like(y)
    (grad,) = torch.autograd.grad((y * weights).sum(), x)
    assert torch.isfinite(grad).all() and grad.abs().sum() > 0


def test_contrast_is_kornias_adjust_contrast():
    # Ours skips kornia's host-side check of the factors; the result must stay kornia's.
    torch.manual_seed(0)
    x = torch.rand(6, 3, 8, 8)
    factor = torch.tensor([0.0, 0.4, 0.7, 1.0, 1.3, 2.5])
    torch.testing.assert_close(scale_contrast(x, factor), KE.adjust_contrast(x, factor))


def test_p_zero_is_the_identity_and_p_one_augments_every_sample():
    x = torch.rand(16, 3, 8, 8) * 2 - 1
    assert torch.equal(DiscriminatorAugment(mode="ada", initial_p=0.0)(x), x)
    torch.manual_seed(1)
    y = DiscriminatorAugment(mode="diffaugment", initial_p=1.0, xflip=False, rotate90=False)(x)
    assert all(not torch.equal(a, b) for a, b in zip(x, y, strict=True))


def test_p_rises_for_an_overfitting_d_and_falls_when_d_is_fooled():
    augment = DiscriminatorAugment(mode="ada", initial_p=0.5, interval=4, speed_kimg=1.0)
    step = 16 * 4 / 1000.0  # batch x interval / speed_images
    sure = torch.full((16, 1), 3.0)  # D(real) > 0 everywhere: r_t = 1 > target 0.6
    for _ in range(3):
        augment.accumulate(sure, 16)
    assert augment.p.item() == 0.5  # only every `interval` D steps
    augment.accumulate(sure, 16)
    assert augment.rt.item() == 1.0 and augment.p.item() == pytest.approx(0.5 + step)
    fooled = torch.full((16, 1), -3.0)  # r_t = -1 < target
    for _ in range(8):
        augment.accumulate(fooled, 16)
    assert augment.rt.item() == -1.0 and augment.p.item() == pytest.approx(0.5 - step)
    for _ in range(400):
        augment.accumulate(fooled, 16)
    assert augment.p.item() == 0.0  # clamped at 0
    fixed = DiscriminatorAugment(mode="diffaugment", initial_p=1.0)
    for _ in range(8):
        fixed.accumulate(sure, 16)
    assert fixed.p.item() == 1.0


def test_bad_options_are_one_line_errors():
    with pytest.raises(ConfigError, match=r"augment\.mode"):
        DiscriminatorAugment(mode="bogus")
    with pytest.raises(ConfigError, match="initial_p"):
        DiscriminatorAugment(initial_p=2.0)
    with pytest.raises(ConfigError, match=r"contrast.*at most 1"):
        DiscriminatorAugment(contrast=1.5)
    with pytest.raises(ConfigError, match="must be >= 0"):
        DiscriminatorAugment(hue=-0.1)
    assert build_augment("none") is None and build_augment(None) is None


def test_ada_run_logs_p_and_rt_and_resume_restores_p(train_config, tmp_path, built_modules):
    import train as train_module

    cfg = train_config(
        "augment=ada",
        "augment.interval=1",
        "augment.speed_kimg=0.1",
        "augment.target=-2.0",  # any r_t (>= -1) is above: p must rise every D step
        "logger=csv",
        "trainer.log_every_n_steps=1",
        "stage.total_kimg=0.064",
        "data.limit=64",
        "++stage.batch_size.8=8",
    )
    train(cfg)
    module = built_modules[-1]
    p = module.augment.p.item()
    assert module._d_steps == 8 and p == pytest.approx(min(1.0, 8 * 8 / 100))
    rows = list(csv.DictReader(next(tmp_path.rglob("metrics.csv")).open()))
    logged = [float(r["augment/p"]) for r in rows if r.get("augment/p")]
    assert logged and logged == sorted(logged) and "augment/rt" in rows[0]
    checkpoint = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=False)
    assert checkpoint["state_dict"]["augment.p"].item() == pytest.approx(p)
    fresh = train_module.build_module(cfg, train_module.build_schedule(cfg.stage))
    fresh.load_state_dict(checkpoint["state_dict"])
    assert fresh.augment.p.item() == pytest.approx(p) and fresh.augment._calls == 8


def _faded_by_hand(x: torch.Tensor, alpha: float) -> torch.Tensor:
    """ProGAN's fade of the reals: each 2×2 cell's mean, blended into x by alpha."""
    N, C, H, W = x.shape
    cells = x.reshape(N, C, H // 2, 2, W // 2, 2).mean(dim=(3, 5), keepdim=True)
    coarse = cells.expand(N, C, H // 2, 2, W // 2, 2).reshape(N, C, H, W)
    return coarse + alpha * (x - coarse)


def test_augment_none_feeds_d_exactly_the_faded_reals_and_fakes(train_config, monkeypatch):
    """Three steps: 8px, then 16px at alpha 0 and 0.5 (a 32-image fade-in). In each, D sees the
    reals faded by that step's alpha, G's own fakes untouched, and interpolates between the two."""
    import train as train_module

    seen, fakes, steps = [], [], []
    build_module = train_module.build_module

    def with_hooks(cfg, schedule):
        module = build_module(cfg, schedule)
        module.discriminator.register_forward_pre_hook(lambda _, args: seen.append(args[0]))
        module.generator.synthesis.register_forward_hook(lambda *io: fakes.append(io[2]))
        return module

    monkeypatch.setattr(train_module, "build_module", with_hooks)
    cfg = train_config(
        "stage.stable_kimg=0.016",
        "stage.fade_kimg=0.032",
        "stage.total_kimg=0.048",
        "data.limit=64",
        "++stage.batch_size.8=16",
    )
    assert compose_config("train", []).augment.mode == "none"  # the paper's default
    step = StyleGANModule.training_step

    def record(self, batch, batch_idx):
        assert self.augment is None
        steps.append((batch.clone(), self.resolution, self.alpha))
        return step(self, batch, batch_idx)

    monkeypatch.setattr(StyleGANModule, "training_step", record)
    train(cfg)
    assert [(res, alpha) for _, res, alpha in steps] == [(8, 1.0), (16, 0.0), (16, 0.5)]
    # Per step: D(real), D(fake) and D(interpolates) in the D step (WGAN-GP), D(fake) in the G
    # step; G's synthesis ran for the D step's fakes and for the G step's.
    assert len(seen) == 4 * len(steps) and len(fakes) == 2 * len(steps)
    for k, (batch, _, alpha) in enumerate(steps):
        real, fake, interpolates, g_fake = seen[4 * k : 4 * k + 4]
        if alpha == 1.0:
            torch.testing.assert_close(real, batch, rtol=0, atol=0)
        else:
            torch.testing.assert_close(real, _faded_by_hand(batch, alpha))
            assert not torch.allclose(real, batch)
        torch.testing.assert_close(fake, fakes[2 * k], rtol=0, atol=0)
        torch.testing.assert_close(g_fake, fakes[2 * k + 1], rtol=0, atol=0)
        # interpolates = lerp(fake, real, eps) for one eps in [0, 1] per sample.
        direction = (real - fake).flatten(1)
        offset = (interpolates.detach() - fake).flatten(1)
        eps = (offset * direction).sum(1) / direction.square().sum(1)
        assert ((eps >= 0) & (eps <= 1)).all()
        torch.testing.assert_close(offset, eps[:, None] * direction, atol=1e-5, rtol=0)


@pytest.mark.parametrize(
    ("saved_p", "resumed_with", "expected_p"),
    [
        (None, "ada", 0.0),  # trained without: ADA starts at its initial_p
        (None, "diffaugment", 1.0),
        (0.3, "none", None),  # trained with ADA, turned off
        (0.3, "diffaugment", 1.0),  # DiffAugment's p is fixed, whatever ADA had reached
        (0.3, "ada", 0.3),  # the same augmentation continues where it was
    ],
)
def test_resume_may_turn_augmentation_on_or_off(
    smoke_run, train_config, tmp_path, built_modules, saved_p, resumed_with, expected_p
):
    """A resumed run may change ``augment``: the checkpoint's state is fitted to it, not refused
    by a missing-keys traceback from inside torch."""
    payload = torch.load(smoke_run / "checkpoints" / "last.ckpt", weights_only=False)
    assert not any(key.startswith("augment.") for key in payload["state_dict"])
    if saved_p is not None:
        saved = DiscriminatorAugment(mode="ada", initial_p=saved_p).state_dict()
        payload["state_dict"].update({f"augment.{key}": value for key, value in saved.items()})
    checkpoint = tmp_path / "trained.ckpt"
    torch.save(payload, checkpoint)
    train(train_config(f"ckpt_path={checkpoint}", f"augment={resumed_with}",
                       "callbacks.samples=null"))  # fmt: skip
    module = built_modules[-1]
    if expected_p is None:
        assert module.augment is None
    else:
        assert module.augment.p.item() == pytest.approx(expected_p)
    written = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=False)["state_dict"]
    assert ("augment.p" in written) == (expected_p is not None)
