"""The exported generator format, and loading a generator back from our checkpoints.

``load_generator`` accepts a training checkpoint (``last.ckpt``, ``best.ckpt``, periodic ones: the
EMA generator is taken) or an exported ``generator.pt``; ``sample.py`` and ``fid.py`` both use it.
"""

import os
from pathlib import Path
from typing import Any

import torch

from stylegan.atomic import atomic_torch_save
from stylegan.errors import UserError
from stylegan.networks import Generator

__all__ = ["atomic_torch_save", "generator_export", "load_generator"]

GENERATOR_FORMAT = "stylegan-generator"
GENERATOR_VERSION = 1
EMA_PREFIX = "generator_ema."


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
    try:
        payload = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # unreadable, truncated, not a torch file
        raise UserError(
            f"cannot read {path} as a PyTorch checkpoint ({type(exc).__name__})"
        ) from exc
    if not isinstance(payload, dict):
        raise UserError(f"{path} is not a stylegan checkpoint or generator.pt")
    if payload.get("format") == GENERATOR_FORMAT:
        config, state, source = payload["config"], payload["state_dict"], "export"
        info = {"resolution": payload.get("resolution"), "images_seen": payload.get("images_seen")}
    elif isinstance(payload.get("stylegan"), dict) and "state_dict" in payload:
        meta = payload["stylegan"]
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
