"""Checkpoints that survive a kill: atomic writes, periodic by kimg, ``last.ckpt`` always current.

Lightning's ``ModelCheckpoint`` counts optimizer steps, which under manual optimization with two
optimizers and a batch size that changes per resolution says little about training progress; this
callback counts images instead and saves at every resolution change too. All files go through
:class:`AtomicCheckpointIO`, so a kill mid-write never leaves a corrupt ``last.ckpt``; a write
that fails (disk full, read-only) leaves the previous ``last.ckpt`` intact and stops the run with
one line naming the path (:class:`~stylegan.atomic.WriteError`). Before anything is written the
divergence guard checks the state (``on_save_checkpoint``), so no checkpoint is ever non-finite.
"""

import shutil
from pathlib import Path
from typing import Any

import lightning as L
from lightning.fabric.plugins import TorchCheckpointIO

from stylegan.atomic import atomic_path
from stylegan.checkpoints import atomic_torch_save, safe_torch_load
from stylegan.errors import UserError


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's torch checkpoint IO, but written to a temp file and renamed into place, and
    read back (``ckpt_path=`` resume) with :func:`~stylegan.checkpoints.safe_torch_load`."""

    def load_checkpoint(
        self, path: Any, map_location: Any | None = None, weights_only: bool | None = None
    ) -> dict[str, Any]:
        checkpoint = safe_torch_load(path, what="ckpt_path")
        if not isinstance(checkpoint, dict):
            raise UserError(f"ckpt_path={path} is not a training checkpoint (a last.ckpt)")
        return checkpoint

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None
    ) -> None:
        atomic_torch_save(checkpoint, path)


class PeriodicCheckpoint(L.Callback):
    """Saves ``kimgNNNNNN.NNN.ckpt`` every ``every_kimg``, at each resolution change and at the end.

    Each is copied to ``last.ckpt`` atomically; only the newest ``keep`` periodic files stay.
    """

    def __init__(self, *, dirpath: str, every_kimg: float = 100.0, keep: int = 5) -> None:
        self.dirpath = Path(dirpath)
        self.every_images = max(1, round(every_kimg * 1000))
        self.keep = keep
        self._images_at_last_save = -1

    @property
    def last_path(self) -> Path:
        return self.dirpath / "last.ckpt"

    @property
    def last_saved_images(self) -> int:
        """Images seen in the newest ``last.ckpt`` this run wrote; -1 = none yet."""
        return self._images_at_last_save

    def _periodic_name(self, images_seen: int) -> str:
        return f"kimg{images_seen / 1000:010.3f}.ckpt"

    def _save(self, trainer: L.Trainer, images_seen: int) -> None:
        if images_seen == self._images_at_last_save:
            return
        periodic = self.dirpath / self._periodic_name(images_seen)
        trainer.save_checkpoint(periodic, weights_only=False)  # every rank calls it; rank 0 writes
        if trainer.is_global_zero:
            with atomic_path(self.last_path) as tmp:
                shutil.copyfile(periodic, tmp)
            self._prune()
        self._images_at_last_save = images_seen
        trainer.strategy.barrier("periodic_checkpoint")

    def _prune(self) -> None:
        if self.keep <= 0:
            return
        periodic = sorted(self.dirpath.glob("kimg*.ckpt"))
        for old in periodic[: -self.keep]:
            old.unlink(missing_ok=True)

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: Any, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if pl_module.step_crossed(self.every_images):
            self._save(trainer, pl_module.images_seen)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: Any) -> None:
        # Epochs end exactly at resolution changes and at the end of training.
        self._save(trainer, pl_module.images_seen)

    def on_fit_end(self, trainer: L.Trainer, pl_module: Any) -> None:
        # E.g. a finished run resumed: no step ran, but this run's folder gets its last.ckpt.
        self._save(trainer, pl_module.images_seen)
