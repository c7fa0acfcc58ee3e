"""Linear separability (Karras et al. 2019, §4.2): how well a hyperplane in Z or W separates
the faces the attribute classifier labels.

For each attribute: generate N images, classify them, keep the most confident half, fit a linear
SVM (scikit-learn's ``LinearSVC``) that predicts the classifier's label from the latent, and
compute the conditional entropy ``H(Y|X)`` of the classifier's labels Y given the SVM's side X
(in nats). The score is ``exp(sum over attributes of H(Y|X))``: 1 when every attribute is
exactly linearly separable, up to ``2**A`` when no hyperplane tells anything. NVlabs' TensorFlow
code computes the same with base-2 logarithms and ``2**sum``, which is the same number.

A confidence is ``max(p, 1 - p)`` of the sigmoid probability; an attribute whose kept half holds
one class only is separable by definition (H = 0), as in NVlabs' code. Latents come from seeds
(:mod:`stylegan.sampling.seeds`): run ``r`` uses seeds ``r * SEED_STRIDE ...``, so runs with
different ``seed`` never share an image.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor
from tqdm import tqdm

from stylegan import sampling
from stylegan.errors import ConfigError

SEED_STRIDE = 10_000_000  # run r's first seed: r * SEED_STRIDE
SVM_MAX_ITER = 5000


def entropy(p: np.ndarray) -> float:
    """``-sum p ln p`` in nats over the entries of ``p`` (``0 ln 0 = 0``)."""
    p = np.asarray(p, dtype=np.float64).ravel()
    p = p[p > 0]
    return float(-(p * np.log(p)).sum())


def conditional_entropy(predicted: np.ndarray, target: np.ndarray) -> float:
    """``H(Y|X) = H(X, Y) - H(X)`` in nats, X the SVM's 0/1 predictions, Y the labels."""
    x = np.asarray(predicted).astype(np.int64).ravel()
    y = np.asarray(target).astype(np.int64).ravel()
    if x.shape != y.shape or not len(x):
        raise ValueError(f"predicted and target must be equal-length 1-D, got {x.shape}, {y.shape}")
    joint = np.zeros((2, 2))
    np.add.at(joint, (x, y), 1.0)
    joint /= len(x)
    return entropy(joint) - entropy(joint.sum(axis=1))


def most_confident(p: np.ndarray, keep_fraction: float) -> np.ndarray:
    """Indices of the ``keep_fraction`` most confident rows of probabilities ``p`` [N]
    (confidence ``max(p, 1 - p)``; ties keep the lower index)."""
    confidence = np.maximum(p, 1 - p)
    keep = max(1, round(len(p) * keep_fraction))
    return np.argsort(-confidence, kind="stable")[:keep]


@dataclass
class Hyperplane:
    """A fitted SVM: unit ``normal`` pointing to the attribute's side, ``offset`` so that
    ``x @ normal + offset > 0`` predicts it, and the SVM's predictions on its inputs."""

    normal: np.ndarray  # [D]
    offset: float
    predicted: np.ndarray  # [n] 0/1


def fit_hyperplane(x: np.ndarray, y: np.ndarray) -> Hyperplane | None:
    """A linear SVM of 0/1 labels ``y`` on ``x`` [n, D]; None when ``y`` has one class only."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.svm import LinearSVC

    y = np.asarray(y).astype(np.int64)
    if y.min() == y.max():
        return None
    svm = LinearSVC(max_iter=SVM_MAX_ITER)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        svm.fit(x, y)
    coef = svm.coef_[0].astype(np.float64)
    norm = float(np.linalg.norm(coef)) or 1.0
    return Hyperplane(coef / norm, float(svm.intercept_[0]) / norm, svm.predict(x).astype(np.int64))


def attribute_entropies(
    latents: np.ndarray, probs: np.ndarray, *, keep_fraction: float = 0.5
) -> tuple[np.ndarray, list[Hyperplane | None]]:
    """``H(Y|X)`` per attribute [A] (nats) and the hyperplanes, for latents [N, D] and the
    classifier's probabilities [N, A]."""
    latents = np.asarray(latents, dtype=np.float64)
    probs = np.asarray(probs, dtype=np.float64)
    entropies, planes = [], []
    for a in range(probs.shape[1]):
        kept = most_confident(probs[:, a], keep_fraction)
        target = (probs[kept, a] >= 0.5).astype(np.int64)
        plane = fit_hyperplane(latents[kept], target)
        entropies.append(0.0 if plane is None else conditional_entropy(plane.predicted, target))
        planes.append(plane)
    return np.asarray(entropies), planes


def separability_score(entropies: Sequence[float]) -> float:
    """``exp(sum H)``: the paper's linear separability of one latent space."""
    return float(np.exp(np.sum(entropies)))


def check_keep_fraction(value: float, name: str = "keep_fraction") -> float:
    if not 0 < value <= 1:
        raise ConfigError(f"{name} must be in (0, 1], got {value}")
    return float(value)


def check_num_samples(value: int, name: str = "num_samples") -> int:
    """The fewest faces the metric accepts: 4."""
    if value < 4:
        raise ConfigError(f"{name} must be >= 4, got {value}")
    return int(value)


@torch.no_grad()
def sample_attributes(
    G,
    classifier: torch.nn.Module,
    seeds: Sequence[int],
    *,
    psi: float = 1.0,
    resolution: int | None = None,
    batch_size: int = 32,
    noise_mode: str = "random",
    progress: bool | None = None,
    desc: str = "classifying",
) -> tuple[Tensor, Tensor, Tensor]:
    """``(z [N, z_dim], w [N, w_dim], probs [N, A])`` of the faces of ``seeds`` (CPU float32),
    rendered at ``resolution`` (None = the generator's final one): w is the mapping's output
    (before truncation), probs the classifier's on the images."""
    device = next(G.parameters()).device
    zs, ws, probs = [], [], []
    bar = tqdm(total=len(seeds), unit="img", desc=desc, disable=progress is False)
    for start in range(0, len(seeds), batch_size):
        chunk = list(seeds[start : start + batch_size])
        z = sampling.latents_for_seeds(chunk, G.z_dim)
        w = sampling.map_latents(G, z, psi=1.0, batch_size=batch_size)[:, 0]  # [n, w_dim]
        ws_trunc = G.truncate(w[:, None].repeat(1, G.num_ws, 1), truncation_psi=psi)
        images = sampling.render_ws(
            G,
            ws_trunc,
            resolution=resolution,
            noise_mode=noise_mode,
            noise_seeds=chunk,
            batch_size=batch_size,
        )
        probs.append(torch.sigmoid(classifier(images.to(device)).float()).cpu())
        zs.append(z)
        ws.append(w.float().cpu())
        bar.update(len(chunk))
    bar.close()
    return torch.cat(zs), torch.cat(ws), torch.cat(probs)


def linear_separability(
    G,
    classifier: torch.nn.Module,
    *,
    num_samples: int,
    seeds: Sequence[int] = (0,),
    keep_fraction: float = 0.5,
    resolution: int | None = None,
    batch_size: int = 32,
    progress: bool | None = None,
) -> dict:
    """The paper's metric in Z and in W for each run seed: ``{"z": [score per seed], "w": [...],
    "num_samples": N, "seeds": [...], "entropies_z"/"entropies_w": [[A] per seed]}``."""
    num_samples = check_num_samples(num_samples)
    keep_fraction = check_keep_fraction(keep_fraction)
    result: dict = {"z": [], "w": [], "entropies_z": [], "entropies_w": []}
    for run in seeds:
        first = sampling.check_seed(int(run), "separability.seeds") * SEED_STRIDE
        z, w, probs = sample_attributes(
            G, classifier, range(first, first + num_samples), resolution=resolution,
            batch_size=batch_size,
            progress=progress, desc=f"separability seed {run}",
        )  # fmt: skip
        for space, latents in (("z", z), ("w", w)):
            h, _ = attribute_entropies(latents.numpy(), probs.numpy(), keep_fraction=keep_fraction)
            result[space].append(separability_score(h))
            result[f"entropies_{space}"].append(h.tolist())
    return {**result, "num_samples": int(num_samples), "seeds": [int(s) for s in seeds]}


def format_separability(result: dict) -> list[str]:
    """``separability Z 123.4 ± 5.6  W 45.6 ± 1.2  (N=10000, seeds 0,1,2)``-style lines."""
    lines = []
    seeds = ",".join(map(str, result["seeds"]))
    for space in ("z", "w"):
        scores = np.asarray(result[space])
        spread = f" ± {scores.std(ddof=1):.2f}" if len(scores) > 1 else ""
        each = ", ".join(f"{s:.2f}" for s in scores)
        lines.append(
            f"linear separability {space.upper()} {scores.mean():.2f}{spread}  "
            f"(N={result['num_samples']} per seed, seeds {seeds}: {each})"
        )
    return lines
