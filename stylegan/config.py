"""Typed schemas of the configs in ``conf/``: the type of every key, nothing else.

Each dataclass is registered in Hydra's ConfigStore and named first in the defaults list of the
YAML it types (``sample_schema`` in ``conf/sample.yaml``, ``loss/wgan_gp_schema`` in
``conf/loss/wgan_gp.yaml``, ...). The YAML files hold the values and the comments users read;
the schema makes Hydra reject ``n=abc`` or ``training.channels_last=maybe`` while composing, and
rejects a YAML key that has no field here. Fields are ``MISSING`` so the YAML stays the one place
defaults live. A knob added to a YAML needs one line here: ``name: type = MISSING``.

Range and choice checks (ψ in [-2, 2], seeds >= 0, a known loss) are not types: they stay next to
the code that owns the value. Keys typed ``Any`` take more than one shape (ψ is a number or a
per-layer list; a figure is a name or a list of names) and are checked by their owner.

:func:`register` runs when ``stylegan`` is imported, so every compose of ``conf/`` sees it.
"""

from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING

# ----------------------------------------------------------------------------------------------
# Training groups (conf/train.yaml, conf/stage, conf/loss, conf/data).


@dataclass
class StageConfig:
    """``conf/stage/*.yaml``: the progressive schedule (see ``paper_schedule.yaml``)."""

    resolution: int = MISSING
    start_resolution: int = MISSING
    fade_kimg: float = MISSING
    stable_kimg: float = MISSING
    total_kimg: float = MISSING
    # {resolution: value}. Keys stay untyped: `stage.lr.8=...` on the command line gives the key
    # "8" (a string), which build_schedule reads as 8 like the YAML's int keys.
    batch_size: dict[Any, int] = MISSING  # global batch size per resolution
    lr: dict[Any, float] = MISSING  # Adam learning rate per resolution
    time_fraction: Any = MISSING  # {resolution: share of trainer.max_time} | null (checked by
    # ProgressiveSchedule; a typed dict would refuse new keys from the command line)
    fade_share: Any = MISSING  # with time_fraction: share of a resolution's time fading in, a
    # number or {resolution: share} (checked by train.build_schedule and ProgressiveSchedule)


@dataclass
class LossConfig:
    """Keys every ``conf/loss/*.yaml`` has."""

    name: str = MISSING
    max_lr: float | None = MISSING


@dataclass
class WganGpLossConfig(LossConfig):
    """``conf/loss/wgan_gp.yaml``."""

    gp_weight: float = MISSING
    drift_weight: float = MISSING
    gp_interval: int = MISSING


@dataclass
class BceLossConfig(LossConfig):
    """``conf/loss/bce.yaml``."""

    r1_gamma: float = MISSING
    r1_interval: int = MISSING


@dataclass
class DataConfig:
    """``conf/data/*.yaml``: the arguments of ``stylegan.data.CelebADataModule``."""

    _target_: str = MISSING
    root: str = MISSING
    layout: str = MISSING
    split: str = MISSING
    exclude_attributes: list[str] = MISSING
    require_attributes: list[str] = MISSING
    crop_size: float = MISSING
    crop_center_y: float = MISSING
    hflip_p: float = MISSING
    resolutions: list[int] | None = MISSING
    cache_dir: str = MISSING
    num_workers: int = MISSING
    limit: int | None = MISSING
    holdout: int = MISSING
    subset: str = MISSING
    seed: int = MISSING


@dataclass
class TrainingConfig:
    """``training:`` in ``conf/train.yaml``."""

    lr_multiplier: float = MISSING
    n_critic: int = MISSING
    style_mixing_prob: float = MISSING
    ema_half_life_kimg: float = MISSING
    ema_rampup: float | None = MISSING
    reset_optimizer_on_phase: bool = MISSING
    channels_last: bool = MISSING
    compile: bool = MISSING
    joint_d_pass_max_batch: int = MISSING
    adam_betas: list[float] = MISSING
    adam_eps: float = MISSING
    on_nonfinite: str = MISSING  # stop | skip_step (checked by the divergence guard)


@dataclass
class TrainConfig:
    """``conf/train.yaml``. Groups typed by their own schema (or by their ``_target_``) are
    ``Any`` here; a new group needs a line too, since the root rejects unknown keys."""

    task_name: str = MISSING
    seed: int = MISSING
    ckpt_path: str | None = MISSING
    training: TrainingConfig = field(default_factory=TrainingConfig)
    paths: Any = None
    stage: Any = None  # StageConfig, named in conf/stage/paper_schedule.yaml
    loss: Any = None  # WganGpLossConfig | BceLossConfig, named in each conf/loss/*.yaml
    model: Any = None
    augment: Any = None
    data: Any = None  # DataConfig, named in conf/data/celeba.yaml
    trainer: Any = None
    logger: Any = None
    callbacks: Any = None
    metrics: Any = None


# ----------------------------------------------------------------------------------------------
# fid.py (conf/fid.yaml).


@dataclass
class FidConfig:
    """``conf/fid.yaml``."""

    task_name: str = MISSING
    ckpt: str = MISSING
    num_images: int = MISSING
    num_real: int | None = MISSING
    feature_network: str = MISSING
    weights_path: str | None = MISSING
    batch_size: int | None = MISSING
    device: str = MISSING
    seed: int = MISSING
    truncation_psi: float = MISSING
    noise: str = MISSING
    floor: bool = MISSING
    paths: Any = None
    data: Any = None  # DataConfig, named in conf/data/celeba.yaml
    metrics: Any = None


# ----------------------------------------------------------------------------------------------
# sample.py (conf/sample.yaml).


@dataclass
class TruncationFigureConfig:
    seeds: list[int] = MISSING
    psis: Any = MISSING  # a ψ or a list of them; each ψ a number or a per-layer list


@dataclass
class MixingFigureConfig:
    sources: list[Any] = MISSING  # seeds (int) or latent files (*.pt): sampling.check_sources
    destinations: list[Any] = MISSING
    layers: Any = MISSING  # a layer spec (name, "a-b", indices) or a list of names


@dataclass
class NoiseFigureConfig:
    seed: int = MISSING
    draws: int = MISSING


@dataclass
class InterpolationFigureConfig:
    space: str = MISSING
    seeds: list[Any] = MISSING  # seeds or latent files
    steps: int = MISSING
    fps: float = MISSING
    mp4: bool = MISSING


@dataclass
class EditFigureConfig:
    seeds: list[Any] = MISSING  # seeds or latent files
    video: bool = MISSING
    steps: int = MISSING
    fps: float = MISSING
    mp4: bool = MISSING


@dataclass
class ConditionalConfig:
    shift: float = MISSING
    max_draws: int = MISSING


@dataclass
class SampleConfig:
    """``conf/sample.yaml``."""

    ckpt: str = MISSING
    figure: Any = MISSING  # a figure name or a list of them
    psi: Any = MISSING  # a number or a per-layer list
    cutoff: int | None = MISSING
    noise: str = MISSING
    batch_size: int = MISSING
    device: str = MISSING
    out_dir: str = MISSING
    n: int = MISSING
    seed: int = MISSING
    save_individual: bool = MISSING
    grid_max: int = MISSING
    truncation: TruncationFigureConfig = field(default_factory=TruncationFigureConfig)
    mixing: MixingFigureConfig = field(default_factory=MixingFigureConfig)
    noise_figure: NoiseFigureConfig = field(default_factory=NoiseFigureConfig)
    interpolation: InterpolationFigureConfig = field(default_factory=InterpolationFigureConfig)
    # Attributes (stylegan.attributes): figure=edit, and faces with attributes=[...].
    attribute: str | None = MISSING
    strengths: list[float] = MISSING
    keep: list[str] = MISSING
    attributes: list[str] = MISSING
    classifier: str | None = MISSING
    edit: EditFigureConfig = field(default_factory=EditFigureConfig)
    conditional: ConditionalConfig = field(default_factory=ConditionalConfig)


# ----------------------------------------------------------------------------------------------
# project.py (conf/project.yaml).


@dataclass
class InceptionDistanceConfig:
    size: int = MISSING
    layers: list[str] = MISSING


@dataclass
class CropConfig:
    size: float = MISSING
    center_y: float = MISSING


@dataclass
class ProjectionScheduleConfig:
    w_avg_samples: int = MISSING
    initial_lr: float = MISSING
    lr_rampup_length: float = MISSING
    lr_rampdown_length: float = MISSING
    initial_noise_factor: float = MISSING
    noise_ramp_length: float = MISSING
    regularize_noise_weight: float = MISSING
    optimize_noise: bool = MISSING


@dataclass
class ProjectConfig:
    """``conf/project.yaml``."""

    ckpt: str = MISSING
    image: str = MISSING
    mode: str = MISSING  # w | w_plus (checked by stylegan.projection)
    steps: int = MISSING
    distance: Any = MISSING  # a name, a list of names or {name: weight} (parse_distance)
    inception: InceptionDistanceConfig = field(default_factory=InceptionDistanceConfig)
    classifier: str | None = MISSING
    lpips_weights: str | None = MISSING
    crop: CropConfig = field(default_factory=CropConfig)
    schedule: ProjectionScheduleConfig = field(default_factory=ProjectionScheduleConfig)
    seed: int = MISSING
    batch_size: int = MISSING
    video: bool = MISSING
    video_every: int = MISSING
    fps: float = MISSING
    mp4: bool = MISSING
    progress: bool = MISSING
    device: str = MISSING
    out_dir: str = MISSING


# ----------------------------------------------------------------------------------------------
# explore.py (conf/explore.yaml).


@dataclass
class ServerConfig:
    host: str = MISSING
    port: int | None = MISSING


@dataclass
class ExploreStartConfig:
    seed: int = MISSING
    grid: int = MISSING
    max_grid: int = MISSING
    psi: float = MISSING
    cutoff: int | None = MISSING
    noise: str = MISSING
    mixing: list[int] = MISSING


@dataclass
class UploadConfig:
    max_bytes: int = MISSING
    max_pixels: int = MISSING


@dataclass
class ExploreProjectionConfig:
    mode: str = MISSING
    steps: int = MISSING
    distance: Any = MISSING  # a name or {name: weight} (checked by stylegan.projection)


@dataclass
class ExploreConfig:
    """``conf/explore.yaml``."""

    ckpt: str = MISSING
    device: str = MISSING
    batch_size: int = MISSING
    out_dir: str = MISSING
    server: ServerConfig = field(default_factory=ServerConfig)
    start: ExploreStartConfig = field(default_factory=ExploreStartConfig)
    upload: UploadConfig = field(default_factory=UploadConfig)
    projection: ExploreProjectionConfig = field(default_factory=ExploreProjectionConfig)


# ----------------------------------------------------------------------------------------------
# attributes.py (conf/attributes.yaml).


@dataclass
class AttributeTrainConfig:
    epochs: int = MISSING
    batch_size: int = MISSING
    lr: float = MISSING
    weight_decay: float = MISSING
    max_time_s: float | None = MISSING
    hflip: bool = MISSING
    bf16: str = MISSING  # auto | true | false (checked by stylegan.attributes.training)
    eval_batch_size: int = MISSING


@dataclass
class SeparabilityConfig:
    num_samples: int = MISSING
    seeds: list[int] = MISSING
    keep_fraction: float = MISSING


@dataclass
class DirectionsConfig:
    num_samples: int = MISSING
    seed: int = MISSING
    keep_fraction: float = MISSING
    method: str = MISSING


@dataclass
class AttributesConfig:
    """``conf/attributes.yaml``."""

    task_name: str = MISSING
    mode: str = MISSING  # train | separability | directions (checked by attributes.py)
    resolution: int = MISSING
    seed: int = MISSING
    device: str = MISSING
    out_dir: str = MISSING
    ckpt: str | None = MISSING
    classifier: str | None = MISSING
    batch_size: int = MISSING
    train: AttributeTrainConfig = field(default_factory=AttributeTrainConfig)
    separability: SeparabilityConfig = field(default_factory=SeparabilityConfig)
    directions: DirectionsConfig = field(default_factory=DirectionsConfig)
    paths: Any = None
    data: Any = None  # DataConfig, named in conf/data/celeba.yaml


@dataclass
class AugmentOffConfig:
    """``conf/augment/none.yaml``."""

    mode: str = MISSING


@dataclass
class AugmentConfig:
    """``conf/augment/ada.yaml`` and ``diffaugment.yaml``."""

    mode: str = MISSING
    initial_p: float = MISSING
    target: float = MISSING
    interval: int = MISSING
    speed_kimg: float = MISSING
    max_p: float = MISSING
    xflip: bool = MISSING
    rotate90: bool = MISSING
    translate: float = MISSING
    brightness: float = MISSING
    contrast: float = MISSING
    saturation: float = MISSING
    hue: float = MISSING
    cutout: float = MISSING


SCHEMAS: dict[tuple[str, str], type] = {
    ("schema", "train"): TrainConfig,
    ("schema", "fid"): FidConfig,
    ("schema", "sample"): SampleConfig,
    ("schema", "explore"): ExploreConfig,
    ("schema", "attributes"): AttributesConfig,
    ("schema", "project"): ProjectConfig,
    ("schema", "stage"): StageConfig,
    ("schema/loss", "wgan_gp"): WganGpLossConfig,
    ("schema/loss", "bce"): BceLossConfig,
    ("schema", "data"): DataConfig,
    ("schema/augment", "none"): AugmentOffConfig,
    ("schema/augment", "ada"): AugmentConfig,
}


def register() -> None:
    """Store every schema in Hydra's ConfigStore (idempotent)."""
    store = ConfigStore.instance()
    for (group, name), node in SCHEMAS.items():
        store.store(group=group, name=name, node=node)
