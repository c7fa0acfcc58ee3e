"""Project real faces into a trained StyleGAN: find the latent (W or W+) that reproduces each one.

Examples:
    python project.py ckpt=outputs/train/<date>/<time>/generator.pt image=face.jpg
    python project.py ckpt=.../last.ckpt image=faces/ mode=w_plus distance=discriminator
    python project.py ckpt=... image=face.jpg distance="{inception: 1, pixels: 0.1}" video=true
    python project.py ckpt=... image=face.jpg distance=lpips lpips_weights=~/vgg16-397923af.pth

Per image ``<name>``: ``<name>.pt`` (the latent, for ``sample.py``'s ``mixing.sources``,
``interpolation.seeds`` and ``edit.seeds``), ``<name>_target-projection.png`` and, with
``video=true``, ``<name>_projection.gif`` (+ ``.mp4``), in ``outputs/project/<date>/<time>/``
(``out_dir=`` to change). The knobs are documented in ``conf/project.yaml``; ``project_images(cfg)``
is what the command runs, and tests call it with a composed config.
"""

import dataclasses
import logging
from pathlib import Path

import hydra
import torch
from omegaconf import DictConfig, OmegaConf

from stylegan import projection, sampling
from stylegan.checkpoints import load_generator
from stylegan.cli import resolve_device, run_hydra_main, run_reporting_user_errors
from stylegan.config import ProjectConfig
from stylegan.data.cache import Crop
from stylegan.errors import ConfigError, UserError
from stylegan.projection.files import write_projection

CONF_DIR = str(Path(__file__).resolve().parent / "conf")

log = logging.getLogger("project")


def read_options(cfg: DictConfig) -> ProjectConfig:
    """``cfg`` as plain values, every value checked before anything is loaded or written."""
    for key in ("ckpt", "image"):
        if OmegaConf.is_missing(cfg, key) or not cfg.get(key):
            raise UserError(f"{key} is required: python project.py ckpt=PATH image=FILE_OR_FOLDER")
    opts: ProjectConfig = OmegaConf.to_object(cfg)
    if not opts.out_dir:
        raise ConfigError("out_dir must be a folder path")
    projection.check_mode(opts.mode)
    opts.distance = projection.parse_distance(opts.distance)
    schedule(opts, steps=opts.steps)  # the ranges of the schedule's values
    if opts.batch_size < 1:
        raise ConfigError(f"batch_size must be an integer >= 1, got {opts.batch_size}")
    if opts.video:
        if opts.video_every < 1:
            raise ConfigError(f"video_every must be an integer >= 1, got {opts.video_every}")
        sampling.check_fps(opts.fps)
    return opts


def schedule(opts: ProjectConfig, *, steps: int) -> projection.Schedule:
    """The checked :class:`~stylegan.projection.Schedule` of ``opts.schedule``."""
    return projection.Schedule(steps=steps, **dataclasses.asdict(opts.schedule)).check()


def output_names(paths: list[Path]) -> list[str]:
    """The file stems, made unique (``a.jpg`` and ``a.png`` -> ``a_jpg``, ``a_png``)."""
    stems = [p.stem for p in paths]
    return [p.stem if stems.count(p.stem) == 1 else f"{p.stem}_{p.suffix[1:]}" for p in paths]


def project_images(cfg: DictConfig) -> list[Path]:
    """Load the generator and every target (all checked first), project each and write its
    files; returns the paths written."""
    opts = read_options(cfg)
    device = resolve_device(opts.device)
    paths = projection.list_targets(opts.image)
    G, info = load_generator(opts.ckpt, device=device)
    res = int(info["resolution"])
    crop = Crop(size=opts.crop.size, center_y=opts.crop.center_y)
    targets = [projection.load_target_image(p, res, crop=crop) for p in paths]
    distance = projection.build_distance(
        opts.distance, resolution=res, device=device, ckpt=opts.ckpt,
        classifier=opts.classifier, lpips_weights=opts.lpips_weights,
        inception_size=opts.inception.size, inception_layers=opts.inception.layers,
    )  # fmt: skip
    fingerprint = projection.generator_fingerprint(G)
    sched = schedule(opts, steps=opts.steps)
    mp4 = opts.video and opts.mp4 and sampling.mp4_available()
    if opts.video and opts.mp4 and not mp4:
        log.info("mp4 skipped: imageio-ffmpeg is not installed (pip install imageio-ffmpeg)")
    out_dir = Path(opts.out_dir)
    written: list[Path] = []
    names = output_names(paths)
    for start in range(0, len(paths), opts.batch_size):
        batch = slice(start, start + opts.batch_size)
        results = projection.project_batch(
            G, torch.stack(targets[batch]), mode=opts.mode, steps=opts.steps, distance=distance,
            resolution=res, schedule=sched, seed=opts.seed, show_bar=opts.progress,
            record_every=opts.video_every if opts.video else 0, fingerprint=fingerprint,
        )  # fmt: skip
        for path, name, target, result in zip(
            paths[batch], names[batch], targets[batch], results, strict=True
        ):
            result.meta["source"] = str(path)
            files = write_projection(
                out_dir, name, target=target, projection=result, video=opts.video, fps=opts.fps,
                mp4=mp4,
            )  # fmt: skip
            print(
                f"{path.name}: mode {opts.mode}, {result.meta['distance']} distance "
                f"{result.distance:.4f}, PSNR {result.psnr:.2f} dB -> {files[0]}"
            )
            written += files
    log.info("generator %s (%s, %dpx, fingerprint %s)", opts.ckpt, info["source"], res, fingerprint)
    return written


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="project")
def hydra_main(cfg: DictConfig) -> None:
    torch.backends.cudnn.benchmark = False
    run_reporting_user_errors(lambda: project_images(cfg))


def main() -> None:
    """The command line: config errors and user errors as one line, exit status 2."""
    run_hydra_main(hydra_main)


if __name__ == "__main__":
    main()
