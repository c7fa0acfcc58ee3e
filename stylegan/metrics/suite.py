"""Which metrics an evaluation computes, and computing them with one feature pass.

The ``metrics`` config group (``conf/metrics/{fid,fid_kid,all,separability}.yaml``) is read at
the edge into a :class:`MetricChoice`; the FID callback and ``fid.py`` both call
:func:`feature_metrics` (FID, KID, precision/recall: one pass of generated images through the
feature network), :func:`ppl_metrics` (PPL, which needs the generator and LPIPS instead) and
:func:`separability_metrics` (the paper's linear separability, which needs the generator and an
attribute classifier: :mod:`stylegan.attributes.separability`).

With FID alone the real side is FID's statistics cache (``fid.real_statistics``) and the
generated side FID's streaming ``fid.compute_fid``, exactly as before. With KID or
precision/recall the real side is the cached real *features*
(:func:`~stylegan.metrics.features.real_features`), FID's statistics are derived from them, and
the generated features are kept for all three metrics, so a cache hit extracts only generated
images, once. Everything here is collective under DDP.

:func:`evaluate_generator` is the whole evaluation both callers run (generate -> real reference
-> feature metrics); it alone builds the real images' cache key (:func:`real_key`) and the
``num_real`` default, so training and ``fid.py`` always share the cache.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from torch import Tensor, nn

from stylegan.errors import ConfigError
from stylegan.metrics.features import generated_features, real_features
from stylegan.metrics.fid import compute_fid, real_statistics
from stylegan.metrics.kid import kernel_inception_distance
from stylegan.metrics.ppl import SAMPLINGS, SPACES, perceptual_path_length
from stylegan.metrics.precision_recall import precision_recall
from stylegan.metrics.statistics import FeatureStats, frechet_distance, statistics_of
from stylegan.sampling import check_batch_size, check_seeds

_KID_KEYS = {"subsets", "max_subset_size"}
_PR_KEYS = {"k", "batch_size"}
_PPL_KEYS = {"variants", "num_samples", "epsilon", "batch_size", "crop", "weights_path"}
_SEPARABILITY_KEYS = {"classifier", "num_samples", "seeds", "keep_fraction", "batch_size"}
PPL_VARIANTS = tuple(f"{s}_{p}" for s in SPACES for p in SAMPLINGS)  # z_full, z_end, w_full, w_end


def _section(cfg: Mapping, name: str, allowed: set[str]) -> dict | None:
    value = cfg.get(name)
    if value is None or value is False:
        return None
    if not isinstance(value, Mapping):
        raise ConfigError(f"metrics.{name} must be a mapping of options or null, got {value!r}")
    unknown = set(value) - allowed
    if unknown:
        raise ConfigError(
            f"metrics.{name}: unknown option(s) {sorted(unknown)}; "
            f"expected some of {sorted(allowed)}"
        )
    return dict(value)


def _separability_section(cfg: Mapping) -> dict | None:
    """``metrics.separability`` checked now, so a bad value fails before FID's minutes."""
    # Imported here: stylegan.attributes pulls in torchvision, which FID alone never needs.
    from stylegan.attributes.separability import check_keep_fraction, check_num_samples

    section = _section(cfg, "separability", _SEPARABILITY_KEYS)
    if section is None:
        return None
    name = "metrics.separability"
    if section.get("classifier") in (None, ""):
        raise ConfigError(
            f"{name}.classifier is required: set {name}.classifier=PATH (a classifier.pt of "
            "`python attributes.py`, trained at the generator's resolution)"
        )
    if section.get("num_samples") is None:
        raise ConfigError(f"{name}.num_samples is required: set {name}.num_samples=N (per seed)")
    seeds = section.get("seeds", [0])
    numbers = {"num_samples": int, "batch_size": int, "keep_fraction": int | float}
    for key, kind in numbers.items():
        if key in section and (type(section[key]) is bool or not isinstance(section[key], kind)):
            what = "an integer" if kind is int else "a number"
            raise ConfigError(f"{name}.{key} must be {what}, got {section[key]!r}")
    if not isinstance(seeds, list | tuple) or not all(type(s) is int for s in seeds):
        raise ConfigError(f"{name}.seeds must be a list of integers, got {seeds!r}")
    section["seeds"] = check_seeds(seeds, f"{name}.seeds")
    check_num_samples(section["num_samples"], f"{name}.num_samples")
    if "keep_fraction" in section:
        check_keep_fraction(section["keep_fraction"], f"{name}.keep_fraction")
    if "batch_size" in section:
        try:
            check_batch_size(section["batch_size"])
        except ConfigError as exc:
            raise ConfigError(f"{name}.{exc}") from None
    section["classifier"] = str(section["classifier"])
    return section


@dataclass(frozen=True)
class MetricChoice:
    """What to compute besides FID (always on); ``None`` = off. See ``conf/metrics/*.yaml``."""

    kid: dict | None = None  # {subsets, max_subset_size}
    precision_recall: dict | None = None  # {k, batch_size}
    ppl: dict | None = None  # {variants, num_samples, epsilon, batch_size, crop, weights_path}
    separability: dict | None = None  # {classifier, num_samples, seeds, keep_fraction, batch_size}

    @classmethod
    def from_config(cls, cfg: Mapping | DictConfig | None) -> MetricChoice:
        """Validate a ``metrics`` config node; a bad one is a one-line :class:`ConfigError`."""
        if cfg is None:
            return cls()
        if isinstance(cfg, DictConfig):
            cfg = OmegaConf.to_container(cfg, resolve=True)
        unknown = set(cfg) - {"kid", "precision_recall", "ppl", "separability"}
        if unknown:
            raise ConfigError(
                f"metrics: unknown metric(s) {sorted(unknown)}; expected kid, precision_recall, "
                "ppl, separability (FID is always computed); choose a preset with "
                "metrics=fid|fid_kid|all|separability"
            )
        ppl = _section(cfg, "ppl", _PPL_KEYS)
        if ppl is not None:
            variants = ppl.get("variants") or ["w_end"]
            bad = [v for v in variants if v not in PPL_VARIANTS]
            if bad or isinstance(variants, str):
                raise ConfigError(
                    f"metrics.ppl.variants must be a list drawn from {list(PPL_VARIANTS)}, "
                    f"got {variants!r}"
                )
            ppl["variants"] = list(variants)
        return cls(
            kid=_section(cfg, "kid", _KID_KEYS),
            precision_recall=_section(cfg, "precision_recall", _PR_KEYS),
            ppl=ppl,
            separability=_separability_section(cfg),
        )

    @property
    def needs_features(self) -> bool:
        """Whether any metric needs every feature vector (not only FID's statistics)."""
        return self.kid is not None or self.precision_recall is not None

    def without_ppl(self) -> MetricChoice:
        return dataclasses.replace(self, ppl=None)


class RealReference(NamedTuple):
    """The real side: FID's statistics, and every feature vector when KID or P&R need them."""

    stats: FeatureStats
    features: Tensor | None


def real_reference(
    images_fn: Callable[[int], Iterable[Tensor]],
    *,
    choice: MetricChoice,
    key: str | Sequence[object],
    count: int,
    feature_name: str,
    feature_net: nn.Module,
    cache_dir: str,
    batch_size: int,
    device: str | torch.device = "cpu",
) -> RealReference:
    """``count`` real images (``images_fn``, cached under ``key``): FID's statistics cache when
    FID is alone, else the features cache (statistics derived from it). Collective under DDP."""
    kwargs = dict(key=key, count=count, feature_name=feature_name, cache_dir=cache_dir,
                  batch_size=batch_size, device=device, feature_net=feature_net)  # fmt: skip
    if not choice.needs_features:
        return RealReference(real_statistics(images_fn, **kwargs), None)
    features = real_features(images_fn, **kwargs)
    return RealReference(statistics_of(features), features)


def feature_metrics(
    generate_fn: Callable[[int], Tensor],
    real: RealReference,
    *,
    choice: MetricChoice,
    num_images: int,
    feature_net: nn.Module,
    batch_size: int,
    device: str | torch.device = "cpu",
) -> dict[str, float]:
    """FID, and KID / precision / recall when chosen, of ``num_images`` generated images against
    ``real`` (:func:`real_reference`). Returns ``fid``, ``num_real``, and ``kid``, ``kid_std``,
    ``kid_subsets``, ``kid_subset_size``, ``precision``, ``recall``, ``pr_k`` for the chosen
    metrics. Collective under DDP; every rank gets the same dict."""
    out: dict[str, float] = {"num_real": float(real.stats.n)}
    if not choice.needs_features:
        out["fid"] = compute_fid(generate_fn, real.stats, num_images=num_images,
                                 batch_size=batch_size, feature_net=feature_net,
                                 device=device)  # fmt: skip
        return out
    if real.features is None:
        raise ValueError("KID and precision/recall need the real features (real_reference)")
    fake = generated_features(generate_fn, num_images=num_images, batch_size=batch_size,
                              feature_net=feature_net, device=device)  # fmt: skip
    out["fid"] = frechet_distance(real.stats, statistics_of(fake))
    if choice.kid is not None:
        kid = kernel_inception_distance(real.features, fake, **choice.kid)
        out.update(kid=kid.kid, kid_std=kid.std, kid_subsets=kid.subsets,
                   kid_subset_size=kid.subset_size)  # fmt: skip
    if choice.precision_recall is not None:
        pr = precision_recall(real.features, fake, **choice.precision_recall)
        out.update(precision=pr.precision, recall=pr.recall, pr_k=pr.k)
    return out


class RealImages(Protocol):
    """What :func:`evaluate_generator` needs of a data module (``CelebADataModule``)."""

    fingerprint: str

    def real_batches(self, resolution: int, count: int, batch_size: int) -> Iterable[Tensor]: ...


def real_key(datamodule: RealImages, resolution: int) -> list[str]:
    """The cache key of a data module's real images at ``resolution`` (count and feature network
    are added by the cache)."""
    return ["fid-real", datamodule.fingerprint, f"{resolution}px"]


def evaluate_generator(
    generate_fn: Callable[[int], Tensor],
    datamodule: RealImages,
    *,
    resolution: int,
    choice: MetricChoice,
    num_images: int,
    num_real: int | None,
    feature_name: str,
    feature_net: nn.Module,
    cache_dir: str,
    batch_size: int,
    device: str | torch.device = "cpu",
) -> tuple[dict[str, float], RealReference]:
    """:func:`feature_metrics` of ``num_images`` generated images against ``num_real`` (None =
    ``num_images``) real images of ``datamodule`` at ``resolution``, whose reference is cached
    under :func:`real_key`. Returns the metrics and the real reference. Collective under DDP."""
    count = num_real or num_images
    reference = real_reference(
        lambda batch_size: datamodule.real_batches(resolution, count, batch_size),
        choice=choice,
        key=real_key(datamodule, resolution),
        count=count,
        feature_name=feature_name,
        feature_net=feature_net,
        cache_dir=cache_dir,
        batch_size=batch_size,
        device=device,
    )
    result = feature_metrics(
        generate_fn,
        reference,
        choice=choice,
        num_images=num_images,
        feature_net=feature_net,
        batch_size=batch_size,
        device=device,
    )
    return result, reference


def ppl_metrics(
    G: Any,
    distance: nn.Module,
    *,
    choice: MetricChoice,
    resolution: int | None = None,
    alpha: float = 1.0,
    seed: int = 0,
    device: str | torch.device = "cpu",
) -> dict[str, float]:
    """``{"ppl_<space>_<sampling>": value}`` for each chosen PPL variant (empty when PPL is off)."""
    if choice.ppl is None:
        return {}
    opts = {k: v for k, v in choice.ppl.items() if k not in ("variants", "weights_path")}
    out = {}
    for variant in choice.ppl["variants"]:
        space, sampling = variant.split("_")
        result = perceptual_path_length(G, distance, space=space, sampling=sampling,
                                        resolution=resolution, alpha=alpha, seed=seed,
                                        device=device, **opts)  # fmt: skip
        out[f"ppl_{variant}"] = result.ppl
    return out


def separability_classifier(
    choice: MetricChoice, *, resolution: int | None = None, device: str | torch.device = "cpu"
) -> nn.Module | None:
    """The chosen attribute classifier (None when separability is off), loaded with
    :func:`~stylegan.attributes.classifier.load_classifier`: a classifier of another
    ``resolution`` (None = any) or a bad file is one :class:`~stylegan.errors.UserError` line."""
    if choice.separability is None:
        return None
    from stylegan.attributes.classifier import load_classifier

    path = choice.separability["classifier"]
    return load_classifier(path, resolution=resolution, device=device)[0]


def separability_metrics(
    G: Any,
    classifier: nn.Module,
    *,
    choice: MetricChoice,
    resolution: int | None = None,
    progress: bool | None = None,
) -> dict[str, Any]:
    """The paper's linear separability with the chosen options (empty when it is off):
    ``separability_z`` and ``separability_w`` (means over the seeds) and ``separability``, the
    whole result of :func:`~stylegan.attributes.separability.linear_separability` (what
    :func:`format_results` prints). Seeded: every rank computes the same value."""
    if choice.separability is None:
        return {}
    from stylegan.attributes.separability import linear_separability

    opts = {k: v for k, v in choice.separability.items() if k != "classifier"}
    result = linear_separability(G, classifier, resolution=resolution, progress=progress, **opts)
    return {
        "separability_z": float(np.mean(result["z"])),
        "separability_w": float(np.mean(result["w"])),
        "separability": result,
    }


def format_results(result: Mapping[str, Any]) -> list[str]:
    """The lines ``fid.py`` prints after the FID line, one per extra metric."""
    lines = []
    if "kid" in result:
        lines.append(
            f"KID {result['kid']:.5f} ± {result['kid_std']:.5f}  (mean ± std over "
            f"{result['kid_subsets']} subsets of {result['kid_subset_size']} images per side)"
        )
    if "precision" in result:
        lines.append(
            f"precision {result['precision']:.4f}  recall {result['recall']:.4f}  "
            f"(k={result['pr_k']} nearest-neighbour manifolds on the same features)"
        )
    for key in sorted(k for k in result if k.startswith("ppl_")):
        space, sampling = key[4:].split("_")
        lines.append(f"PPL {space.upper()} {sampling} {result[key]:.2f}  (LPIPS-VGG16 / eps²)")
    if "separability" in result:
        from stylegan.attributes.separability import format_separability

        lines.extend(format_separability(result["separability"]))
    return lines
