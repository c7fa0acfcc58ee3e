"""Export of the EMA generator at the end of training as ``generator.pt`` (weights + config)."""

from pathlib import Path
from typing import Any

import lightning as L

from stylegan.checkpoints import atomic_torch_save, generator_export


class ExportGenerator(L.Callback):
    """Writes ``generator.pt`` for ``sample.py``: EMA weights, config, trained resolution."""

    def __init__(self, *, path: str) -> None:
        self.path = Path(path)

    def on_train_end(self, trainer: L.Trainer, pl_module: Any) -> None:
        if trainer.is_global_zero:
            payload = generator_export(
                pl_module.generator_ema,
                resolution=int(pl_module.resolution),
                images_seen=int(pl_module.images_seen),
            )
            atomic_torch_save(payload, self.path)
