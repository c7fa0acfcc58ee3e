"""CelebA attributes: train the attribute classifier, measure a generator's linear separability
(Karras et al. 2019, §4.2), and store its attribute directions in W for editing.

Examples:
    python attributes.py data.root=../shared/celeba                       # classifier, 64px
    python attributes.py data.root=../shared/celeba resolution=32         # for a 32px generator
    python attributes.py mode=separability ckpt=outputs/train/<date>/<time>/generator.pt \\
        classifier=outputs/attributes/<date>/<time>/classifier.pt
    python attributes.py mode=directions ckpt=.../generator.pt classifier=.../classifier.pt
    python sample.py ckpt=.../generator.pt figure=edit attribute=Smiling keep=[Male]

``mode=train`` trains on the training faces only (``data.holdout`` faces are held out) and
prints the held-out accuracy per attribute beside the majority-class baseline and the balanced
accuracy; it writes ``classifier.pt`` (:mod:`stylegan.attributes.classifier`). The knobs are
documented in ``conf/attributes.yaml``. ``attributes(cfg)`` is what the command runs.
"""

import logging
from pathlib import Path

import hydra
import numpy as np
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from stylegan.attributes import (
    TrainOptions,
    classifier_export,
    classify_uint8,
    fit_directions,
    format_report,
    format_separability,
    holdout_report,
    labels_for,
    linear_separability,
    load_classifier,
    read_attribute_table,
    sample_attributes,
    store_directions,
    train_classifier,
)
from stylegan.attributes.directions import METHODS, generator_payload
from stylegan.attributes.separability import SEED_STRIDE, check_keep_fraction
from stylegan.checkpoints import atomic_torch_save, load_generator
from stylegan.cli import resolve_device, run_hydra_main, run_reporting_user_errors
from stylegan.errors import ConfigError, UserError

# Absolute, so main() finds conf/ when this file is imported (tests), not only run as __main__.
CONF_DIR = str(Path(__file__).resolve().parent / "conf")
MODES = ("train", "separability", "directions")

log = logging.getLogger("attributes")


def _images_and_labels(datamodule, resolution: int, table: dict, source: str):
    prepared = datamodule.prepared
    images = torch.from_numpy(np.array(prepared.array(resolution)))
    labels = torch.from_numpy(labels_for(prepared.files, table, source))
    return images, labels


def train_mode(cfg: DictConfig, device: torch.device) -> dict:
    """Train the classifier on the training faces, report on the held-out ones, save it."""
    opts = TrainOptions(**OmegaConf.to_container(cfg.train, resolve=True)).check()
    if cfg.resolution < 8 or cfg.resolution & (cfg.resolution - 1):
        raise ConfigError(f"resolution must be a power of two >= 8, got {cfg.resolution}")
    names, table = read_attribute_table(cfg.data.root)
    source = str(Path(cfg.data.root) / "list_attr_celeba.txt")
    datamodule = instantiate(cfg.data, resolutions=[cfg.resolution])
    datamodule.prepare_data()
    datamodule.setup("fit")
    images, labels = _images_and_labels(datamodule, cfg.resolution, table, source)
    log.info("training on %d faces at %dpx, device %s", len(images), cfg.resolution, device)
    classifier, seen = train_classifier(
        images, labels, attributes=names, opts=opts, seed=cfg.seed, device=device
    )
    report = None
    held = datamodule.held_out()
    if held is not None:
        held.prepare_data()
        held.setup("fit")
        held_images, held_labels = _images_and_labels(held, cfg.resolution, table, source)
        probs = classify_uint8(
            classifier, held_images, batch_size=opts.eval_batch_size, device=device
        )
        report = holdout_report(probs, held_labels, labels)
        for line in format_report(names, report):
            print(line)
    else:
        print("no held-out faces (data.holdout=0): no accuracy report")
    path = Path(cfg.out_dir) / "classifier.pt"
    payload = classifier_export(
        classifier,
        crop=[datamodule.crop.size, datamodule.crop.center_y],
        holdout=report,
        images_seen=seen,
        train_images=len(images),
    )
    atomic_torch_save(payload, path)
    print(f"classifier: {path}")
    mean = float(np.mean(report["accuracy"])) if report else None
    return {"path": path, "report": report, "mean_accuracy": mean, "images_seen": seen}


def _generator_and_classifier(cfg: DictConfig, device: torch.device):
    if not cfg.get("ckpt"):
        raise UserError(f"mode={cfg.mode} needs ckpt=PATH (a generator.pt)")
    if not cfg.get("classifier"):
        raise UserError(f"mode={cfg.mode} needs classifier=PATH (a classifier.pt of mode=train)")
    if cfg.batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1, got {cfg.batch_size}")
    G, info = load_generator(cfg.ckpt, device=device)
    res = int(info["resolution"])
    classifier, _ = load_classifier(cfg.classifier, resolution=res, device=device)
    return G, res, classifier


def separability_mode(cfg: DictConfig, device: torch.device) -> dict:
    """Linear separability in Z and W of the generator, one measurement per seed."""
    G, res, classifier = _generator_and_classifier(cfg, device)
    o = cfg.separability
    if not o.seeds:
        raise ConfigError("separability.seeds must list at least one seed")
    result = linear_separability(
        G, classifier, num_samples=o.num_samples, seeds=list(o.seeds),
        keep_fraction=o.keep_fraction, resolution=res, batch_size=cfg.batch_size,
    )  # fmt: skip
    for line in format_separability(result):
        print(line)
    return result


def directions_mode(cfg: DictConfig, device: torch.device) -> dict:
    """Fit every attribute's direction in W and store them in the generator.pt."""
    o = cfg.directions
    check_keep_fraction(o.keep_fraction)
    if o.method not in METHODS:
        raise ConfigError(f"directions.method must be svm or mean, got {o.method!r}")
    if o.num_samples < 4:
        raise ConfigError(f"directions.num_samples must be >= 4, got {o.num_samples}")
    if cfg.get("ckpt"):
        generator_payload(cfg.ckpt)  # a last.ckpt is refused now, not after N faces
    G, res, classifier = _generator_and_classifier(cfg, device)
    first = o.seed * SEED_STRIDE
    _, w, probs = sample_attributes(
        G, classifier, range(first, first + o.num_samples), resolution=res,
        batch_size=cfg.batch_size, desc="directions",
    )  # fmt: skip
    directions = fit_directions(
        w, probs, classifier.attributes, keep_fraction=o.keep_fraction, method=o.method,
        resolution=res,
        classifier=str(Path(cfg.classifier).resolve()),
    )  # fmt: skip
    path = store_directions(cfg.ckpt, directions)
    share = (probs >= 0.5).float().mean(dim=0)
    print(f"stored {len(directions.attributes)} attribute directions (N={o.num_samples}) in {path}")
    print("share of generated faces with: " + ", ".join(
        f"{n} {s:.2f}" for n, s in zip(directions.attributes, share.tolist(), strict=True)
    ))  # fmt: skip
    return {"path": path, "directions": directions, "share": share}


def attributes(cfg: DictConfig) -> dict:
    """Run ``cfg.mode``; returns what it measured (and the file it wrote)."""
    if cfg.mode not in MODES:
        raise ConfigError(f"mode must be one of {', '.join(MODES)}, got {cfg.mode!r}")
    device = resolve_device(cfg.device)
    run = {"train": train_mode, "separability": separability_mode, "directions": directions_mode}
    return run[cfg.mode](cfg, device)


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="attributes")
def hydra_main(cfg: DictConfig) -> float | None:
    result = run_reporting_user_errors(lambda: attributes(cfg))
    return result.get("mean_accuracy")


def main() -> None:
    """The command line: config errors and user errors as one line, exit status 2."""
    run_hydra_main(hydra_main)


if __name__ == "__main__":
    main()
