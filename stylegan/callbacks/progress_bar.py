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

    def on_train_epoch_start(self, trainer: L.Trainer, *_: Any) -> None:
        super().on_train_epoch_start(trainer)
        bar = self.train_progress_bar
        bar.total = self.total_kimg
        bar.unit = "kimg"
        bar.n = bar.last_print_n = round(trainer.lightning_module.images_seen / 1000, 2)
        bar.set_description(f"{trainer.lightning_module.resolution}px")

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: Any, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        bar = self.train_progress_bar
        if bar is None or bar.disable or (batch_idx + 1) % max(1, self.refresh_rate):
            return
        bar.n = round(pl_module.images_seen / 1000, 2)
        bar.set_description(f"{pl_module.resolution}px")
        bar.set_postfix(self.get_metrics(trainer, pl_module), refresh=False)
        bar.refresh()

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: Any) -> None:
        if self.train_progress_bar is not None:
            self.train_progress_bar.n = round(pl_module.images_seen / 1000, 2)
        super().on_train_epoch_end(trainer, pl_module)

    def get_metrics(self, trainer: L.Trainer, pl_module: Any) -> dict[str, Any]:
        metrics = super().get_metrics(trainer, pl_module)
        metrics.pop("v_num", None)
        metrics.pop("kimg", None)
        metrics.pop("res", None)
        return metrics
