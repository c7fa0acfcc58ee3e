"""A progress bar that counts what training is measured in: thousands of images (kimg).

Lightning's bar counts batches per epoch, but here an epoch ends at each resolution change and
the run ends at ``stage.total_kimg``; this bar runs from 0 to total kimg across the whole run and
shows resolution, alpha and the D/G losses beside it.
"""

from typing import Any

import lightning as L
from lightning.pytorch.callbacks import TQDMProgressBar


class KimgProgressBar(TQDMProgressBar):
    """TQDM bar over kimg for the whole run, with resolution, alpha, D and G loss."""

    BAR_FORMAT = "{l_bar}{bar}| {n_fmt}/{total_fmt} kimg [{elapsed}<{remaining}]{postfix}"

    def __init__(self, *, total_kimg: float, refresh_rate: int = 10) -> None:
        super().__init__(refresh_rate=refresh_rate)
        self.total_kimg = total_kimg

    def _show(self, module: Any) -> None:
        bar = self.train_progress_bar
        bar.n = min(round(module.images_seen / 1000, 3), self.total_kimg)
        bar.set_description(f"{module.resolution}px")

    def on_train_epoch_start(self, trainer: L.Trainer, *_: Any) -> None:
        # Not Lightning's per-epoch batch count: one bar over the whole run's kimg.
        if self._leave or self.train_progress_bar is None:
            self.train_progress_bar = self.init_train_tqdm()
        self.train_progress_bar.reset(total=self.total_kimg)
        self._show(trainer.lightning_module)

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: Any, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        bar = self.train_progress_bar
        if bar is None or bar.disable or (batch_idx + 1) % max(1, self.refresh_rate):
            return
        self._show(pl_module)
        bar.set_postfix(self.get_metrics(trainer, pl_module), refresh=False)
        bar.refresh()

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: Any) -> None:
        if self.train_progress_bar is not None:
            self._show(pl_module)
        super().on_train_epoch_end(trainer, pl_module)

    def get_metrics(self, trainer: L.Trainer, pl_module: Any) -> dict[str, Any]:
        metrics = super().get_metrics(trainer, pl_module)
        metrics.pop("v_num", None)
        return metrics
