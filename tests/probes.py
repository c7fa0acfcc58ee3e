"""Test-only callbacks that runs load through the config (``+callbacks.probe=...``, with
``tests/`` on ``PYTHONPATH`` in a subprocess): they write what a rank saw and ended with to
``dirpath``."""

import hashlib
import os
from pathlib import Path
from typing import Any

import lightning as L
import torch


class RankProbe(L.Callback):
    """Per rank: a hash of every real image it trained on, and its final weights and buffers
    (``rank<global_rank>.pt`` in ``dirpath``)."""

    def __init__(self, dirpath: str) -> None:
        self.dirpath = Path(dirpath)
        self.image_hashes: list[str] = []

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: Any, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        # Not on_train_batch_start: a batch the module skips (the old loader's, at a resolution
        # change) is not trained on.
        images = batch[0] if isinstance(batch, list | tuple) else batch
        for image in images.detach().cpu():
            self.image_hashes.append(hashlib.sha1(image.numpy().tobytes()).hexdigest())

    def on_train_end(self, trainer: L.Trainer, pl_module: Any) -> None:
        self.dirpath.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().cpu().clone() for k, v in pl_module.state_dict().items()}
        torch.save(
            {
                "global_rank": trainer.global_rank,
                "world_size": trainer.world_size,
                "node_rank": trainer.node_rank,
                "images_seen": pl_module.images_seen,
                "image_hashes": self.image_hashes,
                "state_dict": state,
            },
            self.dirpath / f"rank{trainer.global_rank}.pt",
        )


def probe_overrides(dirpath: Path) -> list[str]:
    """The train.py overrides that add a :class:`RankProbe` writing to ``dirpath``."""
    return ["+callbacks.probe._target_=probes.RankProbe", f"+callbacks.probe.dirpath={dirpath}"]


def probe_env() -> dict[str, str]:
    """The environment of a train.py subprocess that can import this module."""
    tests = str(Path(__file__).resolve().parent)
    return {**os.environ, "PYTHONPATH": os.pathsep.join([tests, os.environ.get("PYTHONPATH", "")])}


def images_trained(dirpath: Path, rank: int = 0) -> list[str]:
    """The hashes of the real images rank ``rank`` trained on, in order."""
    return torch.load(Path(dirpath) / f"rank{rank}.pt", weights_only=False)["image_hashes"]
