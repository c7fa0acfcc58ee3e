"""Sample grids of a fixed set of latents from the EMA generator during training.

Every ``every_kimg`` thousand images, at the end of every resolution and of training, the same ``z``
(drawn once from ``seed``) is rendered with fixed noise at the current resolution and alpha and
saved as ``samples/kimgNNNNN.NNN_RRpx.png``; loggers that take images (W&B) get it too. Also saves
one grid of real training images per resolution (``reals_RRpx.png``) to compare against.
"""

import math
from pathlib import Path
from typing import Any

import lightning as L
import torch

from stylegan.imaging import grid_image, save_grid


class SampleGrid(L.Callback):
    """Writes fixed-z EMA sample grids by kimg and resolution."""

    def __init__(
        self,
        *,
        dirpath: str,
        every_kimg: float = 50.0,  # thousands of images between grids
        num_images: int = 64,  # images per grid
        seed: int = 123,  # seed of the fixed latents
        nrow: int | None = None,  # images per grid row; None = square-ish
    ) -> None:
        self.dirpath = Path(dirpath)
        self.every_images = max(1, round(every_kimg * 1000))
        self.num_images = num_images
        self.seed = seed
        self.nrow = nrow or max(1, math.isqrt(num_images))
        self._z: torch.Tensor | None = None
        self._images_at_last_save = -1
        self._reals_saved: set[int] = set()
        self.saved: list[Path] = []

    def fixed_latents(self, z_dim: int) -> torch.Tensor:
        if self._z is None:
            gen = torch.Generator().manual_seed(self.seed)
            self._z = torch.randn(self.num_images, z_dim, generator=gen)
        return self._z

    @torch.no_grad()
    def render(self, pl_module: Any) -> torch.Tensor:
        G = pl_module.generator_ema
        z = self.fixed_latents(G.z_dim).to(pl_module.device)
        images = [
            G(
                chunk,
                resolution=pl_module.resolution,
                alpha=pl_module.alpha,
                noise_mode="const",
            ).float()
            for chunk in z.split(16)
        ]
        return torch.cat(images)

    def _log_image(self, trainer: L.Trainer, key: str, images: torch.Tensor, caption: str) -> None:
        for logger in trainer.loggers:
            if hasattr(logger, "log_image"):
                picture = grid_image(images, nrow=self.nrow)
                logger.log_image(key=key, images=[picture], caption=[caption])

    def _save(self, trainer: L.Trainer, pl_module: Any) -> None:
        if not trainer.is_global_zero or pl_module.images_seen == self._images_at_last_save:
            return
        self._images_at_last_save = pl_module.images_seen
        kimg = pl_module.images_seen / 1000
        images = self.render(pl_module)
        path = self.dirpath / f"kimg{kimg:09.3f}_{pl_module.resolution}px.png"
        self.saved.append(save_grid(images, path, nrow=self.nrow))
        caption = f"{kimg:.1f} kimg, {pl_module.resolution}px, alpha {pl_module.alpha:.2f}"
        self._log_image(trainer, "samples", images, caption)

    def _save_reals(self, trainer: L.Trainer, pl_module: Any, batch: torch.Tensor) -> None:
        resolution = batch.shape[-1]
        if not trainer.is_global_zero or resolution in self._reals_saved:
            return
        self._reals_saved.add(resolution)
        reals = batch[: self.num_images]
        save_grid(reals, self.dirpath / f"reals_{resolution}px.png", nrow=self.nrow)
        self._log_image(trainer, "reals", reals, f"real images, {resolution}px")

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: Any, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        self._save_reals(trainer, pl_module, batch)
        if pl_module.step_crossed(self.every_images):
            self._save(trainer, pl_module)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: Any) -> None:
        # Epochs end exactly at resolution changes and at the end of training.
        self._save(trainer, pl_module)
