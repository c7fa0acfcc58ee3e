"""What a bit-identical resume needs beyond weights, optimizers and progress: the random streams
of training and the data loader's position.

The module draws its latents, mixing crossovers, noise and penalty interpolants from the global
torch RNG (and anything may use numpy's or Python's). :class:`ExactResume` gives training its own
copy of those streams: it restores them right before every step and captures them right after,
so callbacks that draw random numbers between steps (FID, grids) do not shift training, and a
checkpoint holds exactly the state the next step starts from. The loader's order and flips are
a pure function of (seed, epoch, draw), so its position is the epoch and the number of batches
trained in it; on resume the data module's next loader starts at that draw
(:meth:`~stylegan.data.CelebADataModule.resume_at`). Lightning restores the epoch itself.

A run resumed from any checkpoint (killed mid-epoch, or saved at a resolution change) therefore
ends with the same weights, bit for bit, as the uninterrupted run on the same machine, for any
``data.num_workers``. Under DDP each process has its own streams (the seed plus its rank, so ranks
never draw the same latents) and only rank 0 writes, so there the streams restart from the seed
(the loader position is still restored).
"""

import random
from typing import Any

import lightning as L
import numpy as np
import torch


def capture_rng() -> dict[str, Any]:
    """The torch (CPU and CUDA), numpy and Python RNG states, as tensors and plain values only
    (what :func:`~stylegan.checkpoints.safe_torch_load` reads back)."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "kind": str(kind),
            "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "gauss": float(gauss),
        },
        "python": random.getstate(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    """Set every RNG to ``state`` (from :func:`capture_rng`)."""
    torch.set_rng_state(state["torch"])
    np_state = state["numpy"]
    np.random.set_state(
        (
            np_state["kind"],
            np_state["keys"].numpy().astype(np.uint32),
            np_state["pos"],
            np_state["has_gauss"],
            np_state["gauss"],
        )
    )
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def offset_streams_by_rank(rank: int) -> None:
    """Reseed every RNG with ``seed + rank``: every process is seeded alike (so models start
    equal), but ranks drawing the same latents, noise and mixing would train on duplicate fakes."""
    seed = torch.initial_seed() + rank
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)


class ExactResume(L.Callback):
    """Keeps training's RNG streams apart from everything else and saves them with the loader's
    position, so that a resumed run continues exactly where the checkpoint left off."""

    def __init__(self) -> None:
        self._rng: dict[str, Any] | None = None  # the streams the next training step starts from
        self._epoch = 0  # the epoch of the loader position
        self._batches = 0  # batches trained in that epoch

    def _single_process(self, trainer: L.Trainer) -> bool:
        return trainer.world_size == 1

    def on_fit_start(self, trainer: L.Trainer, pl_module: Any) -> None:
        datamodule = trainer.datamodule
        if self._batches and hasattr(datamodule, "resume_at"):
            datamodule.resume_at(epoch=self._epoch, batches=self._batches)

    def on_train_start(self, trainer: L.Trainer, pl_module: Any) -> None:
        if not self._single_process(trainer):
            offset_streams_by_rank(trainer.global_rank)
        if self._rng is None or not self._single_process(trainer):
            self._rng = capture_rng()  # a fresh run: the streams as seeded

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: Any) -> None:
        if trainer.current_epoch != self._epoch:  # a new epoch (not the one resumed into)
            self._epoch, self._batches = trainer.current_epoch, 0

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: Any, batch: Any, batch_idx: int
    ) -> None:
        if self._rng is not None and self._single_process(trainer):
            restore_rng(self._rng)

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: Any, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        self._batches += 1
        if self._single_process(trainer):
            self._rng = capture_rng()

    def state_dict(self) -> dict[str, Any]:
        return {
            "rng": self._rng if self._rng is not None else capture_rng(),
            "loader": {"epoch": self._epoch, "batches": self._batches},
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._rng = state_dict.get("rng")
        loader = state_dict.get("loader", {})
        self._epoch = int(loader.get("epoch", 0))
        self._batches = int(loader.get("batches", 0))
