"""The exported generator format, safe loading of our files, and loading a generator back.

``load_generator`` accepts a training checkpoint (``last.ckpt``, ``best.ckpt``, periodic ones: the
EMA generator is taken) or an exported ``generator.pt``; ``sample.py`` and ``fid.py`` both use it.

Every file we read goes through :func:`safe_torch_load`: ``torch.load(weights_only=True)`` with
the explicit allow-list :data:`ALLOWED_GLOBALS`. Our files hold only tensors, dicts, lists,
tuples, strings, numbers, booleans and None (the RNG states of a checkpoint are stored as
tensors), so the allow-list is empty: a pickle that names any class or function (the way a
``__reduce__`` payload runs code) is refused with one line before anything in it executes.

``generator.pt`` versions: a reader accepts its own :data:`GENERATOR_VERSION` and every older one
(converted on load; version 1 is the first), and refuses a newer one with one line that says to
upgrade. A training checkpoint's ``checkpoint["stylegan"]["format"]`` is
:data:`CHECKPOINT_FORMAT`; resuming from or sampling a checkpoint of another format is refused with
one line (:func:`check_checkpoint_format`).
"""

import os
import pickle
import re
from pathlib import Path
from typing import Any

import torch

from stylegan.atomic import atomic_torch_save
from stylegan.errors import ConfigError, UserError
from stylegan.networks import Generator

__all__ = [
    "ALLOWED_GLOBALS",
    "CHECKPOINT_FORMAT",
    "atomic_torch_save",
    "check_checkpoint_format",
    "generator_export",
    "load_generator",
    "safe_torch_load",
]

GENERATOR_FORMAT = "stylegan-generator"
GENERATOR_VERSION = 1
CHECKPOINT_FORMAT = 1  # checkpoint["stylegan"]["format"] of a training checkpoint
EMA_PREFIX = "generator_ema."
# Classes and functions (beyond torch's tensor rebuilders and Python's plain containers) that our
# files may name. Empty on purpose: add an entry only for a type that our own writers store.
ALLOWED_GLOBALS: list[Any] = []


def safe_torch_load(
    path: str | os.PathLike, *, what: str = "a stylegan file", mmap: bool = False
) -> Any:
    """``torch.load`` that never runs code: ``weights_only=True`` with :data:`ALLOWED_GLOBALS`.

    Raises a one-line :class:`UserError` for a file that is missing, truncated, not a PyTorch file,
    or that names a global outside the allow-list (the message names it). ``mmap=True`` maps the
    tensors instead of reading them: a cheap check of a large file."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{what} not found: {path}")
    try:
        with torch.serialization.safe_globals(ALLOWED_GLOBALS):
            return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as exc:
        found = re.search(r"GLOBAL\s+([\w.]+)", str(exc))
        if found:
            raise UserError(
                f"refusing to load {path}: it names {found.group(1)}, which stylegan's files never "
                "hold (loading it could run code); only load checkpoints that train.py wrote"
            ) from None
        raise UserError(_unreadable(path, exc)) from None
    except Exception as exc:  # truncated zip, garbage bytes, a directory, EOF, ...
        raise UserError(_unreadable(path, exc)) from None


def _unreadable(path: Path, exc: BaseException) -> str:
    first = str(exc).strip().splitlines()[0].split(". ")[0][:100] if str(exc).strip() else ""
    detail = f"{type(exc).__name__}: {first}" if first else type(exc).__name__
    return (
        f"cannot read {path}: truncated or not a PyTorch checkpoint ({detail}); "
        "point ckpt at a complete last.ckpt or generator.pt"
    )


def check_checkpoint_format(meta: dict[str, Any], where: str | os.PathLike) -> None:
    """One-line ConfigError unless a training checkpoint's ``stylegan`` entry (``meta``) has the
    :data:`CHECKPOINT_FORMAT` this code writes; ``where`` names the file or the config key."""
    found = meta.get("format")
    if found != CHECKPOINT_FORMAT:
        raise ConfigError(
            f"{where} is a stylegan checkpoint of format {found!r}, but this stylegan reads format "
            f"{CHECKPOINT_FORMAT}; use the stylegan version that wrote it, or start a new run"
        )


def generator_export(generator: Generator, **extra: Any) -> dict[str, Any]:
    """The ``generator.pt`` payload: plain state dict plus the config that rebuilds it."""
    return {
        "format": GENERATOR_FORMAT,
        "version": GENERATOR_VERSION,
        "config": generator.config,
        "state_dict": {k: v.detach().cpu() for k, v in generator.state_dict().items()},
        **extra,
    }


def load_generator(
    path: str | os.PathLike, *, device: str | torch.device = "cpu"
) -> tuple[Generator, dict[str, Any]]:
    """Rebuild the (EMA) generator from ``last.ckpt`` or ``generator.pt``.

    Returns the generator in eval mode and info: ``resolution`` (what it was trained to so far),
    ``images_seen``, ``source`` ("checkpoint" or "export").
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(
            f"checkpoint not found: {path} (pass ckpt=PATH to a last.ckpt or generator.pt)"
        )
    payload = safe_torch_load(path, what="checkpoint")
    if not isinstance(payload, dict):
        raise UserError(f"{path} is not a stylegan checkpoint or generator.pt")
    if payload.get("format") == GENERATOR_FORMAT:
        version = payload.get("version")
        if not isinstance(version, int) or version < 1:
            raise UserError(f"{path}: generator.pt format version {version!r} is not one we wrote")
        if version > GENERATOR_VERSION:
            raise UserError(
                f"{path} is generator.pt format version {version}, newer than this stylegan reads "
                f"({GENERATOR_VERSION}); upgrade stylegan to load it"
            )
        config, state, source = payload["config"], payload["state_dict"], "export"
        info = {"resolution": payload.get("resolution"), "images_seen": payload.get("images_seen")}
    elif isinstance(payload.get("stylegan"), dict) and "state_dict" in payload:
        meta = payload["stylegan"]
        check_checkpoint_format(meta, path)
        try:
            config, source = meta["generator_config"], "checkpoint"
            state = {
                k[len(EMA_PREFIX) :]: v
                for k, v in payload["state_dict"].items()
                if k.startswith(EMA_PREFIX)
            }
            info = {
                "resolution": meta["progress"]["resolution"],
                "images_seen": meta["progress"]["images_seen"],
            }
        except (KeyError, TypeError, AttributeError) as exc:
            raise UserError(f"{path} is an incomplete stylegan checkpoint (no {exc})") from exc
    else:
        raise UserError(
            f"{path} is not a stylegan checkpoint or generator.pt "
            "(expected a last.ckpt from train.py or its exported generator.pt)"
        )
    try:
        generator = Generator(**config)
        generator.load_state_dict(state)
    except (TypeError, ValueError, RuntimeError) as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(
            f"{path}: the generator weights do not match its config ({first_line})"
        ) from exc
    generator.eval().requires_grad_(False).to(device)
    info["source"] = source
    if info["resolution"] is None:
        info["resolution"] = generator.resolution
    return generator, info
