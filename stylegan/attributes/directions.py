"""Attribute directions in W (InterFaceGAN, Shen et al. 2020) and editing along them.

A direction is the unit normal of the linear SVM that separates, in W, the generated faces the
classifier labels with an attribute from those it labels without (the most confident
``keep_fraction`` of them, as for linear separability). It is stored inside ``generator.pt``
under :data:`DIRECTIONS_KEY`, beside the weights it belongs to::

    {"attributes": [A names], "normals": [A, w_dim], "offsets": [A], "scales": [A],
     "num_samples": N, "resolution": R, "classifier": "path of classifier.pt"}

``scales`` is the standard deviation of ``w @ normal`` over the N faces: an edit of strength
``s`` moves w by ``s * scale`` along the direction, so strengths mean the same for any
generator (3 = three standard deviations of the faces it makes).

Conditional editing (InterFaceGAN §3.3): to change an attribute while keeping others, the
direction is projected onto the orthogonal complement of the kept attributes' normals
(:func:`orthogonalize`), so a move along it does not cross their hyperplanes.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from stylegan import sampling
from stylegan.atomic import atomic_torch_save
from stylegan.attributes.labels import check_attribute
from stylegan.attributes.separability import attribute_entropies, most_confident
from stylegan.checkpoints import GENERATOR_FORMAT, safe_torch_load
from stylegan.errors import ConfigError, UserError

DIRECTIONS_KEY = "attribute_directions"


@dataclass
class Directions:
    """Unit normals in W per attribute, with their offsets and scales (see the module doc)."""

    attributes: list[str]
    normals: Tensor  # [A, w_dim] float32, unit rows
    offsets: Tensor  # [A]: w @ normal + offset > 0 on the attribute's side
    scales: Tensor  # [A]: std of w @ normal over the faces the SVMs saw
    num_samples: int = 0
    resolution: int = 0
    classifier: str = ""
    method: str = "svm"  # how the normals were fitted (fit_directions)

    def to_payload(self) -> dict[str, Any]:
        return {
            "attributes": list(self.attributes),
            "normals": self.normals.float().cpu(),
            "offsets": self.offsets.float().cpu(),
            "scales": self.scales.float().cpu(),
            "num_samples": int(self.num_samples),
            "resolution": int(self.resolution),
            "classifier": str(self.classifier),
            "method": str(self.method),
        }

    @classmethod
    def from_payload(cls, payload: dict[str, Any]) -> Directions:
        return cls(**{"method": "svm", **payload})  # files written before method was stored

    def index(self, name: str, what: str = "attribute") -> int:
        return self.attributes.index(check_attribute(name, self.attributes, what))


METHODS = ("svm", "mean")


def mean_difference_plane(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, float] | None:
    """The unit normal from the mean of the 0-labelled rows of ``x`` to the mean of the
    1-labelled ones, and the offset that puts the boundary half way between them; None with one
    class only."""
    if y.min() == y.max():
        return None
    low, high = x[y == 0].mean(axis=0), x[y == 1].mean(axis=0)
    normal = high - low
    normal = normal / (np.linalg.norm(normal) or 1.0)
    return normal, -float((low + high) / 2 @ normal)


def fit_directions(
    w: Tensor,
    probs: Tensor,
    attributes: Sequence[str],
    *,
    keep_fraction: float = 0.5,
    method: str = "svm",
    **meta: Any,
) -> Directions:
    """Unit normals in W of every attribute from mapped latents ``w`` [N, w_dim] and the
    classifier's probabilities [N, A], on the most confident ``keep_fraction`` per attribute.
    ``method="svm"``: the linear SVM's normal (InterFaceGAN, and the separability metric's
    hyperplane); ``"mean"``: the difference of the two classes' mean w (the way the faces with
    the attribute differ from those without, on average, correlations included).
    An attribute the classifier never (or always) sees gets a zero normal: editing it is
    refused."""
    if method not in METHODS:
        raise ConfigError(f"directions.method must be svm or mean, got {method!r}")
    normals = np.zeros((len(attributes), w.shape[1]))
    offsets = np.zeros(len(attributes))
    if method == "svm":
        _, planes = attribute_entropies(w.numpy(), probs.numpy(), keep_fraction=keep_fraction)
        for a, plane in enumerate(planes):
            if plane is not None:
                normals[a], offsets[a] = plane.normal, plane.offset
    else:
        x, p = w.double().numpy(), probs.double().numpy()
        for a in range(p.shape[1]):
            kept = most_confident(p[:, a], keep_fraction)
            found = mean_difference_plane(x[kept], (p[kept, a] >= 0.5).astype(np.int64))
            if found is not None:
                normals[a], offsets[a] = found
    normals_t = torch.from_numpy(normals).float()
    scales = (w.double() @ normals_t.double().T).std(dim=0).float()  # [A]
    return Directions(
        list(attributes),
        normals_t,
        torch.from_numpy(offsets).float(),
        scales,
        num_samples=int(w.shape[0]),
        method=method,
        **meta,
    )


def orthogonalize(direction: Tensor, conditions: Sequence[Tensor]) -> Tensor:
    """``direction`` [D] minus its projection onto the span of ``conditions`` (each [D]; zero
    ones are ignored), normalised: the conditional direction of InterFaceGAN. Raises UserError
    when nothing is left (the direction lies in their span)."""
    d = direction.double()
    conditions = [c.double() for c in conditions if float(c.double().norm()) > 0]
    if conditions:
        basis, r = torch.linalg.qr(torch.stack(conditions, dim=1))
        basis = basis[:, r.diagonal().abs() > 1e-9]  # drop conditions in the span of others
        d = d - basis @ (basis.T @ d)
    norm = d.norm()
    if norm < 1e-6 * max(1.0, float(direction.double().norm())):
        raise UserError("the edit direction lies in the span of the kept attributes' directions")
    return (d / norm).to(direction.dtype)


def edit_direction(
    directions: Directions, attribute: str, keep: Sequence[str] = ()
) -> tuple[Tensor, float]:
    """The unit direction to edit ``attribute`` with, orthogonal to the ``keep`` attributes'
    normals, and the scale (std of w along the attribute's normal) strengths are counted in."""
    a = directions.index(attribute)
    kept = [directions.index(k, "keep attribute") for k in keep]
    if a in kept:
        raise UserError(f"cannot edit {attribute} while keeping it (keep={list(keep)})")
    normal = directions.normals[a]
    if float(normal.norm()) == 0:
        raise UserError(f"no direction for {attribute}: the classifier gave every face one label")
    conditions = [directions.normals[k] for k in kept if float(directions.normals[k].norm()) > 0]
    return orthogonalize(normal, conditions), float(directions.scales[a])


def shift_ws(ws: Tensor, direction: Tensor, shift: float | Tensor) -> Tensor:
    """ws [N, num_ws, w_dim] moved by ``shift`` (a number or [N]) along ``direction`` [w_dim]
    in every layer."""
    shift = torch.as_tensor(shift, dtype=ws.dtype, device=ws.device).reshape(-1, 1, 1)
    return ws + shift * direction.to(ws.device, ws.dtype).view(1, 1, -1)


def edited_ws(
    G,
    ws: Tensor,
    moves: Sequence[tuple[Tensor, float | Tensor]],
    *,
    psi: float | Sequence[float] = 1.0,
    cutoff: int | None = None,
) -> Tensor:
    """Untruncated ws [N, num_ws, w_dim] moved by each ``(direction, shift)`` of ``moves`` in
    turn (a shift is a number or [N], in w units), then truncated: an edit is made before the
    truncation, so ψ pulls the edited face towards the mean as it would any other."""
    for direction, shift in moves:
        ws = shift_ws(ws, direction, shift)
    return G.truncate(ws, truncation_psi=psi, truncation_cutoff=cutoff)


@torch.no_grad()
def edit_images(
    G,
    seeds: Sequence[int],
    direction: Tensor,
    scale: float,
    strengths: Sequence[float],
    *,
    psi: float | Sequence[float] = 1.0,
    cutoff: int | None = None,
    noise_mode: str = "random",
    resolution: int | None = None,
    batch_size: int = 32,
) -> Tensor:
    """The edit grid as images [len(seeds) * len(strengths), C, r, r] (CPU float), row-major:
    row = seed, column = strength. Seed ``s`` keeps its own noise in every column; a seed may be
    a fixed latent (a projected real face, :mod:`stylegan.sampling.sources`)."""
    ws = sampling.source_ws(G, seeds, psi=1.0, batch_size=batch_size)  # untruncated [S, L, D]
    S, K = len(seeds), len(strengths)
    rows = ws.repeat_interleave(K, dim=0)
    shifts = torch.tensor([float(s) * scale for s in strengths]).repeat(S)
    edited = edited_ws(G, rows, [(direction, shifts)], psi=psi, cutoff=cutoff)
    noise = sampling.noise_args([s for s in seeds for _ in range(K)])
    return sampling.render_ws(G, edited, resolution=resolution, noise_mode=noise_mode,
                              batch_size=batch_size, **noise)  # fmt: skip


def generator_payload(path: str | os.PathLike) -> dict[str, Any]:
    """The contents of the ``generator.pt`` at ``path``; one line when it is something else
    (directions are stored only in a generator.pt)."""
    payload = safe_torch_load(path, what="generator.pt")
    if not isinstance(payload, dict) or payload.get("format") != GENERATOR_FORMAT:
        raise UserError(
            f"attribute directions are stored in a generator.pt, and {path} is not one; pass "
            "the run's generator.pt as ckpt="
        )
    return payload


def store_directions(path: str | os.PathLike, directions: Directions) -> Path:
    """Write ``directions`` into the ``generator.pt`` at ``path`` (atomically; other keys kept)."""
    payload = generator_payload(path)
    payload[DIRECTIONS_KEY] = directions.to_payload()
    return atomic_torch_save(payload, Path(path))


def load_directions(path: str | os.PathLike) -> Directions:
    """The directions stored in ``path`` (a generator.pt); one line when it has none."""
    payload = safe_torch_load(path, what="checkpoint")
    found = payload.get(DIRECTIONS_KEY) if isinstance(payload, dict) else None
    if not found:
        raise UserError(
            f"{path} has no attribute directions; compute them with: python attributes.py "
            f"mode=directions ckpt={path} classifier=PATH/classifier.pt"
        )
    try:
        return Directions.from_payload(found)
    except TypeError as exc:
        raise UserError(f"{path}: malformed attribute directions ({exc})") from None
