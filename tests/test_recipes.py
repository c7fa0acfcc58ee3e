"""Recipes (``experiment=...``) compose with every loss and augmentation and train with them; a
time-budgeted schedule follows the clock; the run's one progress bar tells the truth."""

import itertools
import re
import time
import warnings
from pathlib import Path

import lightning as L
import pytest
import torch
from conftest import ROOT, compose_config

from stylegan.callbacks.progress_bar import KimgProgressBar, RateMeter, format_seconds
from stylegan.cli import silence_library_notices
from stylegan.errors import ConfigError
from stylegan.schedule import FADE, STABLE, ProgressiveSchedule
from train import build_schedule, train

RECIPES = sorted(p.stem for p in (ROOT / "conf" / "experiment").glob("*.yaml"))
LOSSES = sorted(p.stem for p in (ROOT / "conf" / "loss").glob("*.yaml"))
AUGMENTS = sorted(p.stem for p in (ROOT / "conf" / "augment").glob("*.yaml"))
# Tiny widths on top of any recipe: the combination is what is tested, not the recipe's speed.
TINY = [
    "model.channel_base=64",
    "model.channel_max=16",
    "model.generator.z_dim=16",
    "model.generator.w_dim=16",
    "model.generator.mapping_layers=2",
]


def recipe_config(tmp_path: Path, cache: Path, celeba_root: Path, *overrides: str):
    return compose_config(
        "train",
        [
            *overrides,
            "logger=none",
            f"paths.root_dir={ROOT}",
            f"paths.output_dir={tmp_path}",
            f"paths.cache_dir={cache}",
            f"data.root={celeba_root}",
            "callbacks.progress_bar=null",
            "callbacks.fid.every_kimg=0",
            "callbacks.fid.at_train_end=false",
            "trainer.enable_progress_bar=false",
            "trainer.enable_model_summary=false",
        ],
    )


# A recipe that refuses a loss (the BatchNorm D has no per-sample gradient penalty).
REFUSED = {("seed_dcgan64", "wgan_gp")}


def training_cover() -> list[tuple[str, str, str]]:
    """The (recipe, loss, augment) runs that are trained: every recipe with every augment, each
    with a loss chosen so that every pair of factors (recipe x loss, loss x augment) is trained
    at least once -- a pairwise cover, half of the full product. The other combinations are
    composed and checked without training (test_every_recipe_composes_...)."""
    cover = []
    for r, recipe in enumerate(RECIPES):
        allowed = [loss for loss in LOSSES if (recipe, loss) not in REFUSED]
        cover += [(recipe, allowed[(r + a) % len(allowed)], aug) for a, aug in enumerate(AUGMENTS)]
    return cover


def test_the_training_cover_trains_every_pair_of_factors():
    cover = training_cover()
    pairs = [({(r, a) for r, _, a in cover}, {(r, a) for r in RECIPES for a in AUGMENTS})]
    pairs.append(({(r, lo) for r, lo, _ in cover}, {(r, lo) for r in RECIPES for lo in LOSSES}))
    pairs.append(({(lo, a) for _, lo, a in cover}, {(lo, a) for lo in LOSSES for a in AUGMENTS}))
    for trained, wanted in pairs:
        assert trained == wanted - REFUSED
    assert len(cover) < len(RECIPES) * len(LOSSES) * len(AUGMENTS)


def composed(recipe, loss, augment, tmp_path, cache, celeba_root):
    cfg = recipe_config(
        tmp_path,
        cache,
        celeba_root,
        f"experiment={recipe}",
        f"loss={loss}",
        f"augment={augment}",
        *TINY,
        "data.limit=256",
        "data.holdout=0",
        "data.num_workers=0",
        "stage.total_kimg=0.032",  # a few steps at the start resolution
        "++stage.batch_size.8=8",
        "++stage.batch_size.64=8",  # seed_dcgan64 starts at 64px
        "callbacks.samples.num_images=4",
    )
    if cfg.model.discriminator._target_.endswith("DCGANDiscriminator"):
        cfg.model.discriminator.base_channels = 8  # tiny, like TINY (64 -> 512 channels else)
    return cfg


def check_composition(cfg, recipe: str, loss: str, augment: str) -> None:
    """The choices made, and the recipe's tuned values for them (conf/recipe/...)."""
    assert cfg.loss.name == loss and cfg.augment.mode == augment
    if recipe.startswith("cpu_faces"):
        # The recipe's tuned values for the loss actually chosen (conf/recipe/loss/...).
        tuned = {"bce": ("r1_interval", 4), "wgan_gp": ("gp_interval", 4)}[loss]
        assert cfg.loss[tuned[0]] == tuned[1]
        if augment == "ada":  # and for the augmentation (conf/recipe/augment/...)
            assert cfg.augment.speed_kimg == 100.0


NOT_TRAINED = [
    combo for combo in itertools.product(RECIPES, LOSSES, AUGMENTS) if combo not in training_cover()
]


@pytest.mark.parametrize(("recipe", "loss", "augment"), NOT_TRAINED)
def test_every_recipe_composes_with_every_loss_and_augment(
    recipe, loss, augment, tmp_path, shared_cache_dir, celeba_root
):
    """The combinations the cover below does not train (it checks the same of those it does)."""
    cfg = composed(recipe, loss, augment, tmp_path, shared_cache_dir, celeba_root)
    check_composition(cfg, recipe, loss, augment)
    if (recipe, loss) in REFUSED and augment == AUGMENTS[0]:  # refused before any training
        with pytest.raises(ConfigError, match="loss=bce"):  # BatchNorm D: no per-sample GP
            train(cfg)


@pytest.mark.slow
@pytest.mark.parametrize(("recipe", "loss", "augment"), training_cover())
def test_a_pairwise_cover_of_recipes_losses_and_augments_trains(
    recipe, loss, augment, tmp_path, shared_cache_dir, celeba_root
):
    cfg = composed(recipe, loss, augment, tmp_path, shared_cache_dir, celeba_root)
    check_composition(cfg, recipe, loss, augment)
    train(cfg)
    last = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=False)
    assert last["stylegan"]["progress"]["images_seen"] >= 32
    assert (tmp_path / "generator.pt").is_file()


def test_a_recipe_without_a_tuned_file_for_the_loss_keeps_the_loss_defaults():
    cfg = compose_config("train", ["experiment=smoke", "loss=bce", "data.root=/x"])
    default = compose_config("train", ["loss=bce", "data.root=/x"])
    assert cfg.loss == default.loss


def test_the_command_line_wins_over_a_recipes_tuned_loss_values():
    cfg = compose_config(
        "train", ["experiment=cpu_faces64", "loss=wgan_gp", "loss.gp_interval=2", "data.root=/x"]
    )
    assert cfg.loss.gp_interval == 2


# ---------------------------------------------------------------------------- time budget
def timed(**kwargs) -> ProgressiveSchedule:
    args = dict(
        final_resolution=32,
        start_resolution=8,
        time_fraction={8: 1, 16: 1, 32: 2},
        fade_share=0.5,
        batch_size={8: 16, 32: 8},
        lr={8: 0.002},
    )
    return ProgressiveSchedule(**(args | kwargs))


@pytest.mark.parametrize(
    "used, resolution, phase, alpha",
    [
        (0.0, 8, STABLE, 1.0),
        (0.2499, 8, STABLE, 1.0),
        (0.25, 16, FADE, 0.0),
        (0.3125, 16, FADE, 0.5),  # half-way through 16px's fade (0.25 .. 0.375)
        (0.375, 16, STABLE, 1.0),
        (0.5, 32, FADE, 0.0),
        (0.625, 32, FADE, 0.5),
        (0.75, 32, STABLE, 1.0),
        (1.5, 32, STABLE, 1.0),  # past the budget: the final resolution stays
    ],
)
def test_time_budget_shares_follow_the_clock(used, resolution, phase, alpha):
    state = timed().state_at(images_seen=1234, budget_used=used)
    assert (state.resolution, state.phase) == (resolution, phase)
    assert state.alpha == pytest.approx(alpha, abs=1e-6)
    assert state.batch_size == (8 if resolution == 32 else 16)
    assert state.images_seen == 1234


def test_time_shares_are_normalized_and_phase_indices_match_the_kimg_schedule():
    a, b = timed(), timed(time_fraction={8: 10, 16: 10, 32: 20})
    kimg = ProgressiveSchedule(final_resolution=32, start_resolution=8, fade_kimg=1, stable_kimg=1)
    for used, images in [(0.1, 500), (0.3, 1500), (0.4, 2500), (0.6, 3500), (0.9, 4500)]:
        assert a.state_at(0, used) == b.state_at(0, used)
        assert a.state_at(0, used).phase_index == kimg.state_at(images).phase_index


def test_a_fade_share_table_sets_each_resolutions_fade_and_a_number_sets_all():
    """{8: 0.5, 32: 0.25}: 16px takes 8px's entry (half of its share fades), 32px its own
    quarter; the phase boundaries (the shares) do not move."""
    table = timed(fade_share={8: 0.5, 32: 0.25})
    assert table.time_phases()[:4] == [
        (8, STABLE, 0.0, 0.25),
        (16, FADE, 0.25, 0.375),
        (16, STABLE, 0.375, 0.5),
        (32, FADE, 0.5, 0.625),
    ]
    assert table.state_at(0, 0.6).alpha == pytest.approx(0.8)  # 0.1 of 32px's 0.125 fade
    assert timed(fade_share={8: 0.5}).time_phases() == timed().time_phases()


def test_the_64px_recipe_fades_64px_in_over_half_its_time(celeba_root):
    cfg = compose_config("train", ["experiment=cpu_faces64", f"data.root={celeba_root}"])
    schedule = build_schedule(cfg.stage)
    assert [schedule.fade_share_at(r) for r in (16, 32, 64)] == [0.25, 0.25, 0.5]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(time_fraction={8: 1, 32: 1}), "no share for \\[16\\]"),
        (dict(time_fraction={8: 1, 16: 0, 32: 1}), "must be > 0"),
        (dict(fade_share=1.0), "fade_share"),
        (dict(fade_share={8: 0.5, 32: 1.0}), "fade_share must be in \\[0, 1\\), got 1.0 at 32px"),
        (dict(fade_share={32: 0.5}), "stage.fade_share has no entry for 16px"),
    ],
)
def test_bad_time_budgets_are_refused(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        timed(**kwargs)


def test_share_overrides_on_a_recipe_merge_as_the_docs_say(celeba_root):
    """conf/stage/paper_schedule.yaml and the README: a {...} override merges into the recipe's
    shares, and one share can be set alone."""
    base = ["experiment=cpu_faces64", f"data.root={celeba_root}"]
    merged = compose_config("train", [*base, "stage.time_fraction={32: 0.3, 64: 0.6}"])
    assert dict(merged.stage.time_fraction) == {8: 0.03, 16: 0.08, 32: 0.3, 64: 0.6}
    single = compose_config("train", [*base, "stage.time_fraction={64: 0.7}"])
    assert dict(single.stage.time_fraction) == {8: 0.03, 16: 0.08, 32: 0.24, 64: 0.7}
    # The dotted form cannot reach an integer key: Hydra refuses it, so the docs do not offer it.
    with pytest.raises(Exception, match=re.escape("Could not override 'stage.time_fraction.64'")):
        compose_config("train", [*base, "stage.time_fraction.64=0.7"])


def test_the_missing_share_hint_is_an_override_that_hydra_accepts(celeba_root):
    """The error names the fix; the fix, pasted as written, composes and builds the schedule."""
    base = ["experiment=cpu_faces64", f"data.root={celeba_root}", "stage.resolution=128"]
    with pytest.raises(ConfigError, match="no share for \\[128\\]") as refused:
        build_schedule(compose_config("train", base).stage)
    hint = re.search(r"e\.g\. (\S+)$", str(refused.value)).group(1)
    schedule = build_schedule(compose_config("train", [*base, hint]).stage)
    assert schedule.resolutions[-1] == 128
    assert schedule.time_phases()[-1][0] == 128


def test_a_time_budget_without_max_time_is_one_line(train_config):
    cfg = train_config("stage.time_fraction={8: 1, 16: 1, 32: 1}", "trainer.max_time=null")
    with pytest.raises(ConfigError, match=r"trainer\.max_time"):
        train(cfg)


@pytest.mark.slow
def test_a_time_budgeted_run_reaches_the_final_resolution_on_a_slow_machine(train_config):
    """A step made slow on purpose: in kimg phases the run would stay at 8px; in shares of
    max_time it grows through every resolution and ends at 32px."""
    seen: list[int] = []

    class Slow(L.Callback):
        def on_train_batch_end(self, trainer, pl_module, *args):
            seen.append(pl_module.resolution)
            time.sleep(0.15)

    cfg = train_config(
        "stage.time_fraction={8: 1, 16: 1, 32: 1}",
        "trainer.max_time=00:00:00:08",
        "stage.total_kimg=100000",
    )
    import train as train_module

    original = train_module.build_callbacks
    train_module.build_callbacks = lambda *a: [*original(*a), Slow()]
    try:
        train(cfg)
    finally:
        train_module.build_callbacks = original
    assert seen[0] == 8 and seen[-1] == 32 and 16 in seen
    assert seen == sorted(seen)  # it only grows


# ---------------------------------------------------------------------------- progress bar
def test_format_seconds_and_rate_meter():
    assert format_seconds(59.6) == "01:00" and format_seconds(3725) == "1:02:05"
    meter = RateMeter(window=10)
    assert meter.rate() is None
    for t in range(40):
        meter.add(float(t), 100 * t if t < 20 else 2000 + 50 * (t - 20))
    assert meter.rate() == pytest.approx(50, rel=0.1)  # the last ~10 s only


def test_library_deprecation_notices_do_not_break_the_bar(tmp_path):
    """The notices torch raises for Lightning's and fid-helper's use of its internals (one in
    the middle of the bar at each resolution change) are hidden at the entry points, by message:
    the real calls stay silent, and other FutureWarnings still show."""
    from torch.utils._pytree import LeafSpec  # on every torch since 2.0

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit.script's own notice: tests only
        torch.jit.script(torch.nn.Linear(2, 2)).save(str(tmp_path / "linear.pt"))
    notices = [
        "`isinstance(treespec, LeafSpec)` is deprecated, use `isinstance(treespec, TreeSpec)`",
        "`torch.jit.load` is deprecated. Please switch to `torch.export`.",
        "`torch.jit.freeze` is deprecated. Please use `torch.compile` instead.",
    ]
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        silence_library_notices()
        isinstance(LeafSpec(), LeafSpec)
        torch.jit.freeze(torch.jit.load(str(tmp_path / "linear.pt")).eval())
        for notice in notices:  # the texts as torch 2.14 words them, whatever torch is here
            warnings.warn(notice, FutureWarning, stacklevel=1)
        warnings.warn("a notice of this project's own", FutureWarning, stacklevel=1)
    assert [str(w.message) for w in seen] == ["a notice of this project's own"]


@pytest.mark.slow
def test_the_bar_eta_under_max_time_is_within_ten_percent_and_it_redraws_during_slow_steps(
    train_config, capfd
):
    """One bar for the whole run: the ETA it shows mid-run predicts the real end within 10 %, it
    redraws at least every 2 s while a step takes 2.5 s, and it never restarts at a resolution
    change."""
    predictions: list[tuple[float, float]] = []  # (now, remaining the bar shows)
    end: list[float] = []

    class Probe(L.Callback):
        def on_train_batch_end(self, trainer, pl_module, *args):
            bar = next(cb for cb in trainer.callbacks if isinstance(cb, KimgProgressBar))
            predictions.append((time.monotonic(), bar.remaining_seconds()))
            if trainer.global_step in (10, 11):  # one slow step, mid-run
                time.sleep(2.5)

        def on_train_end(self, trainer, pl_module):
            # Training ended at its last step; the end-of-run writes after it are not training
            # time (the bar's ETA is), and under load they take seconds.
            end.append(predictions[-1][0])

    cfg = train_config(
        "trainer.max_time=00:00:00:20",
        "stage.time_fraction={8: 1, 16: 1, 32: 1}",  # every resolution, however slow the machine
        "stage.total_kimg=100000",
    )
    cfg.callbacks.progress_bar = {
        "_target_": "stylegan.callbacks.KimgProgressBar",
        "total_kimg": 100000,
        "refresh_seconds": 0.5,
    }
    cfg.trainer.enable_progress_bar = True
    import train as train_module

    original = train_module.build_callbacks
    train_module.build_callbacks = lambda *a: [*original(*a), Probe()]
    try:
        train(cfg)
    finally:
        train_module.build_callbacks = original
    output = capfd.readouterr().err.replace("\r", "\n")
    lines = [line for line in output.splitlines() if "kimg" in line]
    clocks = [re.search(r"(\d\d):(\d\d)<", line) for line in lines]
    elapsed = [int(m[1]) * 60 + int(m[2]) for m in clocks if m]
    assert elapsed == sorted(elapsed), "the bar's clock restarted"
    assert {"8px", "16px", "32px"} <= {line.split()[0] for line in lines}
    assert max(elapsed) >= 19
    # Redraws: every second of the run appears on the bar, the slow step included.
    assert set(range(1, 19)) <= set(elapsed)
    mid = [p for p in predictions if 6 < p[1] < 16]
    assert mid, predictions
    for now, remaining in mid:
        actual = end[0] - now
        assert abs(remaining - actual) <= 0.1 * actual, (remaining, actual)


def test_under_ddp_every_rank_takes_rank_zeros_clock():
    """Ranks whose clocks differ must still switch resolution on the same step: the share of
    the budget spent is rank 0's, broadcast."""
    from types import SimpleNamespace

    from lightning.pytorch.callbacks import Timer

    from stylegan.callbacks import ProgressiveGrowing

    class RankZeroClock:
        def broadcast(self, obj, src=0):
            assert src == 0
            return 0.3  # rank 0 is already in 16px's fade; this rank's own clock says 8px

    timer = Timer(duration="00:00:01:40")
    timer._offset = 10.0  # this rank: 10 s of 100 spent
    callback = ProgressiveGrowing(timed())
    callback._timer = timer
    trainer = SimpleNamespace(world_size=2, strategy=RankZeroClock())
    assert callback.budget_used(trainer) == 0.3
    assert callback.schedule.state_at(0, callback.budget_used(trainer)).resolution == 16
    alone = SimpleNamespace(world_size=1, strategy=None)
    assert callback.budget_used(alone) == pytest.approx(0.1)


@pytest.mark.slow
def test_a_resumed_time_budgeted_run_continues_the_clock_and_its_phase(train_config, tmp_path):
    """Lightning's timer is checkpointed: a run resumed with a longer max_time starts in the
    phase its spent share points to, not back at the start resolution."""
    seen: list[int] = []

    class Record(L.Callback):
        def on_train_batch_start(self, trainer, pl_module, *args):
            seen.append(pl_module.resolution)

    shares = "stage.time_fraction={8: 1, 16: 1, 32: 1}"
    train(train_config(shares, "trainer.max_time=00:00:00:06", "stage.total_kimg=100000"))
    last = tmp_path / "checkpoints" / "last.ckpt"
    spent = torch.load(last, weights_only=False)["callbacks"]["Timer"]["time_elapsed"]["train"]
    assert 6 <= spent < 9
    import train as train_module

    original = train_module.build_callbacks
    train_module.build_callbacks = lambda *a: [*original(*a), Record()]
    try:
        # 6 s of 12: half the budget, which is 16px's stable phase (1/3 .. 2/3, fade until 1/2).
        cfg = train_config(shares, "trainer.max_time=00:00:00:12", "stage.total_kimg=100000")
        cfg.ckpt_path = str(last)
        train(cfg)
    finally:
        train_module.build_callbacks = original
    assert seen[0] == 16 and seen[-1] == 32
