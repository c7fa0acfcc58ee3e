"""Progressive growing as a Lightning callback.

Before every step it derives the progressive state (resolution, fade-in alpha, phase, batch size,
learning rate) from the module's ``images_seen`` with the pure
:class:`~stylegan.schedule.ProgressiveSchedule`, applies it to the module, and tells the data
module which resolution and per-device batch size its next loader must serve. It stops training
once the schedule's total length is reached. It holds no state of its own: ``images_seen`` lives
in the module's checkpoint, so a resumed run continues with the same resolution and alpha.
The data module is pointed at the stage when fitting starts (before the first loader is built);
the module gets the state when training starts, after Lightning has restored the optimizers, so
a phase change that clears Adam's moments does so on the restored state, as it did in the run
that wrote the checkpoint.

A time-budgeted schedule (``stage.time_fraction``) reads the fraction of ``trainer.max_time``
spent from Lightning's :class:`~lightning.pytorch.callbacks.Timer`, whose elapsed time is
checkpointed, so a resumed run picks up the phase it was in.
"""

from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Timer
from lightning.pytorch.utilities import rank_zero_warn
from torch import Tensor

from stylegan.errors import ConfigError
from stylegan.module import StyleGANModule
from stylegan.schedule import ProgressiveSchedule


class ProgressiveGrowing(L.Callback):
    """Drives resolution, alpha, batch size and lr from images seen; ends training at total_kimg."""

    def __init__(self, schedule: ProgressiveSchedule) -> None:
        self.schedule = schedule
        self._timer: Timer | None = None

    def budget_used(self, trainer: L.Trainer) -> float | None:
        """Fraction of trainer.max_time spent (time-budgeted schedules only, else None). Under
        DDP it is rank 0's clock, broadcast, so every rank switches phase on the same step (as
        Lightning's own Timer broadcasts its stop decision each step)."""
        if self._timer is None:
            return None
        elapsed = self._timer.time_elapsed("train")
        used = elapsed / max(elapsed + (self._timer.time_remaining("train") or 0.0), 1e-9)
        if trainer.world_size > 1:
            used = float(trainer.strategy.broadcast(used, src=0))
        return used

    def _apply(
        self,
        trainer: L.Trainer,
        module: StyleGANModule,
        batch_resolution: int | None,
        *,
        to_module: bool = True,
    ) -> None:
        """Point the data module at the scheduled stage; apply it to the module if the current
        loader serves it. Otherwise the module ends the epoch on this batch and keeps the state it
        trained with, so epoch-end checkpoints and grids show the finished resolution."""
        state = self.schedule.state_at(module.images_seen, self.budget_used(trainer))
        world = trainer.world_size
        if state.batch_size % world:
            raise ConfigError(
                f"stage.batch_size at {state.resolution}px ({state.batch_size}) is the global "
                f"batch and must divide by the {world} processes; change it or the device count"
            )
        datamodule = trainer.datamodule
        if datamodule is None or not hasattr(datamodule, "set_stage"):
            raise ConfigError("progressive growing needs a data module with set_stage()")
        datamodule.set_stage(state.resolution, state.batch_size // world)
        if to_module and batch_resolution in (None, state.resolution):
            module.apply_progress(state)

    def on_fit_start(self, trainer: L.Trainer, pl_module: StyleGANModule) -> None:
        if self.schedule.time_budgeted:
            timers = [cb for cb in trainer.callbacks if isinstance(cb, Timer)]
            if not timers or timers[0].time_remaining("train") is None:
                raise ConfigError(
                    "stage.time_fraction divides trainer.max_time, which is not set; set "
                    'trainer.max_time="00:01:00:00" or stage.time_fraction=null'
                )
            self._timer = timers[0]
        elif self.schedule.images_to_reach_final() > self.schedule.total_images:
            rank_zero_warn(
                f"stage.total_kimg={self.schedule.total_kimg} ends before "
                f"{self.schedule.final_resolution}px is faded in "
                f"({self.schedule.images_to_reach_final() / 1000:g} kimg needed)"
            )
        self._apply(trainer, pl_module, batch_resolution=None, to_module=False)
        if pl_module.images_seen >= self.schedule.total_images:
            trainer.should_stop = True

    def on_train_start(self, trainer: L.Trainer, pl_module: StyleGANModule) -> None:
        self._apply(trainer, pl_module, batch_resolution=None)

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: StyleGANModule, batch: Tensor, batch_idx: int
    ) -> None:
        self._apply(trainer, pl_module, batch_resolution=batch.shape[-1])

    def on_train_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: StyleGANModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        if pl_module.images_seen >= self.schedule.total_images:
            trainer.should_stop = True
