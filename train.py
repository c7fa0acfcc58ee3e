"""Train StyleGAN on CelebA with progressive growing.

Examples:
    python train.py stage=64px loss=wgan_gp data.root=/data/celeba
    python train.py experiment=smoke data.root=../shared/celeba          # tiny CPU run, ~1 min
    python train.py stage=128px trainer=gpu trainer.precision=bf16-mixed data.root=...
    python train.py <same overrides> ckpt_path=outputs/train/.../checkpoints/last.ckpt  # resume
    python train.py -m loss=wgan_gp,bce experiment=smoke data.root=...  # a sweep

``train(cfg)`` is what the command runs; tests call it directly with a composed config.
"""

from pathlib import Path
from typing import Any, NamedTuple

import hydra
import lightning as L
import torch
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from lightning.pytorch.utilities.exceptions import SIGTERMException
from omegaconf import DictConfig, OmegaConf

from stylegan.augment import build_augment
from stylegan.callbacks import (
    AtomicCheckpointIO,
    DivergenceGuard,
    ExactResume,
    Preemption,
    ProgressiveGrowing,
)
from stylegan.callbacks.preemption import requeued_checkpoint
from stylegan.checkpoints import safe_torch_load
from stylegan.cli import run_hydra_main, run_reporting_user_errors
from stylegan.errors import ConfigError, UserError
from stylegan.module import StyleGANModule
from stylegan.precision import register_resolvers
from stylegan.schedule import ProgressiveSchedule

# Absolute, so main() finds conf/ when this file is imported (tests), not only run as __main__.
CONF_DIR = str(Path(__file__).resolve().parent / "conf")

register_resolvers()  # ${best_cpu_precision:} in conf/trainer/cpu.yaml


def time_fraction(value: Any) -> dict[int, float] | None:
    """``stage.time_fraction`` as {resolution: share}, or None (phases counted in kimg)."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ConfigError(
            f"stage.time_fraction must be {{resolution: share}} or null, got {value!r}; "
            "e.g. stage.time_fraction='{8: 0.1, 16: 0.2, 32: 0.7}'"
        )
    try:
        return {int(k): float(v) for k, v in value.items()}
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"stage.time_fraction must map resolutions to numbers: {exc}") from exc


def fade_share(value: Any) -> float | dict[int, float]:
    """``stage.fade_share`` as a number or {resolution: share} (one line otherwise)."""
    try:
        if isinstance(value, dict):
            return {int(k): float(v) for k, v in value.items()}
        return float(value)
    except (TypeError, ValueError):
        raise ConfigError(
            f"stage.fade_share must be a number or {{resolution: share}}, got {value!r}; "
            "e.g. stage.fade_share=0.5 or stage.fade_share='{8: 0.25, 64: 0.5}'"
        ) from None


def build_schedule(
    stage: DictConfig, lr_multiplier: float = 1.0, max_lr: float | None = None
) -> ProgressiveSchedule:
    """The progressive schedule of ``stage``; lr entries capped at ``max_lr`` (per loss), then
    scaled by ``lr_multiplier``."""
    stage = OmegaConf.to_container(stage, resolve=True)
    cap = float("inf") if max_lr is None else float(max_lr)
    return ProgressiveSchedule(
        final_resolution=stage["resolution"],
        start_resolution=stage["start_resolution"],
        fade_kimg=stage["fade_kimg"],
        stable_kimg=stage["stable_kimg"],
        total_kimg=stage["total_kimg"],
        batch_size={int(k): int(v) for k, v in stage["batch_size"].items()},
        lr={int(k): min(float(v), cap) * lr_multiplier for k, v in stage["lr"].items()},
        time_fraction=time_fraction(stage.get("time_fraction")),
        fade_share=fade_share(stage.get("fade_share", 0.5)),
    )


class RunKnobs(NamedTuple):
    """The ``loss`` and ``training`` groups split by the object that reads each knob."""

    lr_multiplier: float  # the schedule's: scales every stage.lr entry
    max_lr: float | None  # the schedule's: caps every stage.lr entry (per loss)
    on_nonfinite: str  # the divergence guard's policy
    module: dict[str, Any]  # StyleGANModule's keyword arguments (`loss` = the loss name)


def run_knobs(cfg: DictConfig) -> RunKnobs:
    """The one place that takes the schedule's and the guard's knobs out of ``loss`` and
    ``training``; everything left goes to the module."""
    loss = dict(OmegaConf.to_container(cfg.loss, resolve=True))
    training = dict(OmegaConf.to_container(cfg.training, resolve=True))
    return RunKnobs(
        lr_multiplier=training.pop("lr_multiplier"),
        max_lr=loss.pop("max_lr"),
        on_nonfinite=training.pop("on_nonfinite"),
        module={"loss": loss.pop("name"), **loss, **training},
    )


def build_module(cfg: DictConfig, schedule: ProgressiveSchedule) -> StyleGANModule:
    try:
        generator = instantiate(cfg.model.generator)
        discriminator = instantiate(cfg.model.discriminator)
    except Exception as exc:  # Hydra wraps constructor errors; show the cause in one line
        cause = exc.__cause__ or exc
        if isinstance(cause, ValueError | TypeError):
            raise ConfigError(f"model config: {cause}") from exc
        raise
    augment = build_augment(**OmegaConf.to_container(cfg.get("augment") or {}, resolve=True))
    return StyleGANModule(
        generator=generator,
        discriminator=discriminator,
        augment=augment,
        lr=schedule.state_at(0, budget_used=0.0).lr,
        **run_knobs(cfg).module,
    )


def instantiate_group(conf: DictConfig, **kwargs: Any) -> Any:
    """``instantiate(conf)``, with a bad value (``trainer.precision=abc``,
    ``callbacks.samples.every_kimg=abc``) reported in one line naming its config key."""
    try:
        return instantiate(conf, **kwargs)
    except InstantiationException as exc:
        cause = exc.__cause__ or exc
        if isinstance(cause, UserError):
            raise cause from exc
        key = conf._get_full_key(None) or "config"
        message = str(cause).strip().splitlines()[0] if str(cause).strip() else type(cause).__name__
        raise ConfigError(f"{key}: {message}") from exc


def build_callbacks(cfg: DictConfig, schedule: ProgressiveSchedule) -> list[L.Callback]:
    # The progressive callback comes first: the others read the state it applies. Then the
    # training RNG streams / loader position, and the divergence guard, which must see every step
    # before anything that writes a checkpoint.
    callbacks: list[L.Callback] = [
        ProgressiveGrowing(schedule),
        ExactResume(),
        DivergenceGuard(policy=run_knobs(cfg).on_nonfinite),
        Preemption(),  # SIGTERM / SIGUSR1: last.ckpt at the end of the step, exit 128 + signal
    ]
    for conf in (cfg.get("callbacks") or {}).values():
        if conf is not None and "_target_" in conf:
            callbacks.append(instantiate_group(conf))
    return callbacks


def build_loggers(cfg: DictConfig) -> list[Any]:
    return [instantiate_group(conf) for conf in (cfg.get("logger") or {}).values() if conf]


def train(cfg: DictConfig) -> float | None:
    """Build everything from ``cfg`` and fit; returns the metric a sweep optimizes (or None)."""
    L.seed_everything(cfg.seed, workers=True)
    # TF32 policy on Ampere+ GPUs, deliberately: fp32 matmuls (mapping network, penalties) stay
    # full fp32, torch's default; cuDNN convs keep torch's default TF32 in training (a 10-bit
    # mantissa, finer than bf16-mixed's, which the penalties handle), and the FID pass turns it
    # off (stylegan/metrics/inception.py) so its value equals the CPU's.
    torch.set_float32_matmul_precision("highest")
    ckpt_path = cfg.get("ckpt_path")
    if not ckpt_path and (requeued := requeued_checkpoint(cfg.paths.output_dir)):
        print(f"resuming the requeued job from {requeued}", flush=True)
        ckpt_path = str(requeued)
    if ckpt_path and not Path(ckpt_path).is_file():
        raise UserError(f"ckpt_path={ckpt_path} does not exist (point it at a run's last.ckpt)")
    if ckpt_path:  # refuse a hostile or broken file before preparing any data (tensors mapped)
        safe_torch_load(ckpt_path, what="ckpt_path", mmap=True)
    knobs = run_knobs(cfg)
    schedule = build_schedule(cfg.stage, knobs.lr_multiplier, knobs.max_lr)
    module = build_module(cfg, schedule)
    datamodule = instantiate(cfg.data, resolutions=schedule.resolutions)
    trainer: L.Trainer = instantiate_group(
        cfg.trainer,
        callbacks=build_callbacks(cfg, schedule),
        logger=build_loggers(cfg) or False,
        plugins=[AtomicCheckpointIO()],
    )
    for logger in trainer.loggers:
        logger.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))
    try:
        trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path)
    except SIGTERMException:  # a cluster stopped the job: last.ckpt is saved; one line, exit 143
        next(cb for cb in trainer.callbacks if isinstance(cb, Preemption)).stop(trainer)
        raise
    # The final FID (at the end of training) is what a sweep minimizes; the run's last line.
    metric = trainer.callback_metrics.get("metrics/fid")
    summaries = [cb.summary for cb in trainer.callbacks if getattr(cb, "summary", None)]
    if summaries and trainer.is_global_zero:
        print(summaries[-1], flush=True)
    return float(metric) if metric is not None else None


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="train")
def hydra_main(cfg: DictConfig) -> float | None:
    return run_reporting_user_errors(lambda: train(cfg))


def main() -> None:
    """The command line: config errors and user errors as one line, exit status 2."""
    run_hydra_main(hydra_main)


if __name__ == "__main__":
    main()
