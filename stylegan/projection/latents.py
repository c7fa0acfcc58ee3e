"""The projected-latent file (``<image>.pt``), the generator fingerprint it carries, and the
check that a latent belongs to the generator it is used with.

Format (plain tensors, lists, strings and numbers: read with
:func:`stylegan.checkpoints.safe_torch_load`, ``weights_only`` and an empty allow-list)::

    {"format": "stylegan-latent", "version": 1,
     "ws": float32 [num_ws, w_dim],            # one row per layer (equal rows for mode=w)
     "noise": [float32 [1, 1, r_i, r_i], ...],  # the optimised noise, one map per layer used
     "meta": {"w_dim", "num_ws", "mode", "resolution", "generator": fingerprint,
              "distance", "psnr", "steps", "source": the image's path}}

A latent from another generator is refused when ``w_dim`` or ``num_ws`` differ (one line, exit
2); a same-shaped latent of another generator (fingerprint differs) only logs a warning, since
it still renders, just not the face it was projected from.
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import Tensor

from stylegan.atomic import atomic_torch_save
from stylegan.checkpoints import safe_torch_load
from stylegan.errors import UserError
from stylegan.networks import Generator
from stylegan.sampling.sources import FixedLatent

LATENT_FORMAT = "stylegan-latent"
LATENT_VERSION = 1
log = logging.getLogger(__name__)


class LatentError(UserError):
    """A latent file that is not ours or does not fit the generator."""


def generator_fingerprint(generator: Generator) -> str:
    """16 hex digits of SHA-1 over the generator's config and every weight and buffer: the same
    generator (a last.ckpt and its generator.pt) always gives the same value."""
    digest = hashlib.sha1(repr(sorted(generator.config.items())).encode())
    for name, tensor in sorted(generator.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


@dataclass
class Latent:
    """A projected face: ws [num_ws, w_dim], its noise maps and the metadata of the file."""

    ws: Tensor
    noise: list[Tensor]
    meta: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None

    @property
    def name(self) -> str:
        """A short label for file names: the file's stem (``face003``)."""
        return self.path.stem if self.path is not None else str(self.meta.get("name", "latent"))

    def as_source(self) -> FixedLatent:
        """This face as a figure source for :mod:`stylegan.sampling` (wherever a seed goes)."""
        return FixedLatent(ws=self.ws, noise=tuple(self.noise), name=self.name)


def save_latent(
    path: str | os.PathLike, ws: Tensor, noise: list[Tensor], meta: dict[str, Any]
) -> Path:
    """Write a latent file atomically; ``meta`` must hold w_dim, num_ws, mode and resolution."""
    missing = [k for k in ("w_dim", "num_ws", "mode", "resolution") if k not in meta]
    if missing:
        raise ValueError(f"latent metadata lacks {missing}")
    payload = {
        "format": LATENT_FORMAT,
        "version": LATENT_VERSION,
        "ws": ws.detach().float().cpu().contiguous(),
        "noise": [n.detach().float().cpu().contiguous() for n in noise],
        "meta": dict(meta),
    }
    return atomic_torch_save(payload, path)


def load_latent(
    path: str | os.PathLike, generator: Generator | None = None, *, fingerprint: str | None = None
) -> Latent:
    """Read a latent file; with ``generator``, also :func:`check_latent` it against that one
    (``fingerprint``: the generator's, when already computed)."""
    path = Path(path)
    payload = safe_torch_load(path, what="latent file")
    if not isinstance(payload, dict) or payload.get("format") != LATENT_FORMAT:
        raise LatentError(f"{path} is not a projected latent (write one: python project.py ...)")
    version = payload.get("version")
    if not isinstance(version, int) or not 1 <= version <= LATENT_VERSION:
        raise LatentError(f"{path}: latent format version {version!r} is newer than this reads")
    latent = Latent(ws=payload["ws"], noise=list(payload["noise"]), meta=payload["meta"], path=path)
    if generator is not None:
        check_latent(latent, generator, fingerprint)
    return latent


def check_latent(latent: Latent, generator: Generator, fingerprint: str | None = None) -> None:
    """LatentError unless the latent's ``w_dim`` and ``num_ws`` are the generator's; a warning
    when its generator fingerprint is another one (``fingerprint``: the generator's, if known)."""
    meta, where = latent.meta, latent.path or "latent"
    want = {"w_dim": generator.w_dim, "num_ws": generator.num_ws}
    found = {"w_dim": int(meta.get("w_dim", -1)), "num_ws": int(meta.get("num_ws", -1))}
    shape = list(latent.ws.shape)
    if found != want or shape != [want["num_ws"], want["w_dim"]]:
        raise LatentError(
            f"{where} was projected with another generator (w_dim {found['w_dim']}, "
            f"{found['num_ws']} layers) than this one (w_dim {want['w_dim']}, {want['num_ws']} "
            "layers): project the image again with this ckpt"
        )
    mine = fingerprint or generator_fingerprint(generator)
    theirs = meta.get("generator")
    if theirs and theirs != mine:
        log.warning(
            "%s was projected with generator %s, not this one (%s): it renders another face",
            where,
            theirs,
            mine,
        )
