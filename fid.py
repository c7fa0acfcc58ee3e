"""FID of a trained generator against real images, printed on one line, then one line per other
metric of the ``metrics`` group (default ``fid_kid``: KID ± its std over subsets).

Examples:
    python fid.py ckpt=outputs/train/<date>/<time>/generator.pt data.root=/data/celeba
    python fid.py ckpt=... data.root=... metrics=all metrics.ppl.weights_path=~/vgg16-397923af.pth
    python fid.py ckpt=... data.root=... metrics=separability \\
        metrics.separability.classifier=outputs/attributes/<date>/<time>/classifier.pt
    python fid.py ckpt=.../checkpoints/last.ckpt data.root=... num_images=50000 device=cuda
    # against faces the run never trained on (it ran with data.holdout=1000), with the floor:
    python fid.py ckpt=... data.root=../shared/celeba data.holdout=1000 data.subset=holdout \\
        num_images=2000

The generator renders at the resolution it was trained to; real images are prepared the same way
as for training (``conf/data``) and their statistics cached under ``paths.cache_dir``.
``evaluate_fid(cfg)`` is what the command runs.
"""

from pathlib import Path

import hydra
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig

from stylegan import sampling
from stylegan.checkpoints import load_generator
from stylegan.cli import resolve_device, run_hydra_main, run_reporting_user_errors
from stylegan.errors import ConfigError
from stylegan.metrics import (
    feature_batch_size,
    feature_statistics,
    frechet_distance,
    load_feature_network,
)
from stylegan.metrics.ppl import load_lpips
from stylegan.metrics.suite import (
    MetricChoice,
    evaluate_generator,
    format_results,
    ppl_metrics,
    separability_classifier,
    separability_metrics,
)

# Absolute, so main() finds conf/ when this file is imported (tests), not only run as __main__.
CONF_DIR = str(Path(__file__).resolve().parent / "conf")


def evaluate_fid(cfg: DictConfig) -> dict:
    """Returns ``{"fid", "floor", "num_images", "num_real", "resolution", "feature_network"}``
    and the keys of the other chosen metrics (``kid``, ``kid_std``, ``precision``, ``recall``,
    ``ppl_w_end``, ``separability_z``, ...; see :mod:`stylegan.metrics.suite`).

    ``floor`` (with ``data.subset=holdout`` and ``floor=true``, else None) is the FID of as many
    real training images as generated ones against the same held-out statistics: what a perfect
    generator would score at these counts."""
    if cfg.num_images < 2:
        raise ConfigError(f"num_images must be >= 2, got {cfg.num_images}")
    choice = MetricChoice.from_config(cfg.get("metrics"))
    noise_mode = sampling.check_noise_mode(cfg.noise)
    device = resolve_device(cfg.device)
    # PPL's LPIPS weights are checked first: a missing file fails in a second, not after FID.
    lpips = load_lpips(choice.ppl.get("weights_path"), device=device) if choice.ppl else None
    generator, info = load_generator(cfg.ckpt, device=device)
    resolution = int(info["resolution"])
    # So is the classifier: one trained at another resolution is refused before FID's minutes.
    classifier = separability_classifier(choice, resolution=resolution, device=device)
    datamodule = instantiate(cfg.data, resolutions=[resolution])
    datamodule.prepare_data()
    datamodule.setup("fit")
    feature_net = load_feature_network(
        cfg.feature_network, weights_path=cfg.weights_path, device=device
    )
    gen = torch.Generator().manual_seed(cfg.seed)
    batch_size = feature_batch_size(cfg.batch_size, device)

    def generate(batch_size: int) -> torch.Tensor:
        z = torch.randn(batch_size, generator.z_dim, generator=gen).to(device)
        return generator(
            z, resolution=resolution, truncation_psi=cfg.truncation_psi, noise_mode=noise_mode
        )

    # The generator's per-pixel noise is drawn from the global RNG: seed it too (forked, so a
    # caller's RNG is left alone), or the value would depend on what consumed it before (imports
    # do, in a fresh process) -- fid.py would not be a function of its config.
    cuda = [torch.device(device)] if torch.device(device).type == "cuda" else []
    with torch.random.fork_rng(devices=cuda):
        torch.manual_seed(cfg.seed)
        result, reference = evaluate_generator(
            generate,
            datamodule,
            resolution=resolution,
            choice=choice,
            num_images=cfg.num_images,
            num_real=cfg.num_real,
            feature_name=cfg.feature_network,
            feature_net=feature_net,
            cache_dir=cfg.paths.fid_cache_dir,
            batch_size=batch_size,
            device=device,
        )
    if lpips is not None:
        with torch.no_grad():
            result.update(
                ppl_metrics(generator, lpips, choice=choice, seed=cfg.seed, device=device)
            )
    if classifier is not None:
        separability = separability_metrics(
            generator, classifier, choice=choice, resolution=resolution
        )
        result.update(separability)
    floor = None
    if cfg.floor and datamodule.subset == "holdout":
        training_reals = instantiate(cfg.data, resolutions=[resolution], subset="train")
        training_reals.prepare_data()
        training_reals.setup("fit")
        batches = training_reals.real_batches(resolution, cfg.num_images, batch_size)
        floor_stats = feature_statistics(batches, feature_net, limit=cfg.num_images, device=device)
        floor = frechet_distance(floor_stats, reference.stats)
    return {
        **result,
        "floor": floor,
        "num_images": int(cfg.num_images),
        "num_real": int(result["num_real"]),
        "resolution": resolution,
        "feature_network": cfg.feature_network,
    }


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="fid")
def hydra_main(cfg: DictConfig) -> float:
    result = run_reporting_user_errors(lambda: evaluate_fid(cfg))
    floor = result["floor"]
    floor_text = f"; real-vs-real floor {floor:.3f}" if floor is not None else ""
    print(
        f"FID {result['fid']:.3f}  ({result['num_images']} generated vs {result['num_real']} real "
        f"images at {result['resolution']}px, {result['feature_network']}{floor_text})"
    )
    for line in format_results(result):
        print(line)
    return result["fid"]


def main() -> None:
    """The command line: config errors and user errors as one line, exit status 2."""
    run_hydra_main(hydra_main)


if __name__ == "__main__":
    main()
