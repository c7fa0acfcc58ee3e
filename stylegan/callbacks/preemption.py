"""Preemption: how a cluster stops a job (SIGTERM) or warns it (SLURM's ``--signal=USR1@90``).

A SLURM time limit or preemption, a Kubernetes eviction and ``timeout`` all send SIGTERM, usually
to the whole process group. :class:`Preemption` turns that into a clean stop:

- its handler only records the signal and raises Lightning's stop flag, so the step in flight
  finishes (under DDP Lightning broadcasts rank 0's flag, so every rank stops at the same step);
- Lightning then raises ``SIGTERMException`` between steps, and ``on_exception`` writes
  ``last.ckpt`` (atomically, after the divergence guard's check) with the state the next step
  starts from, so the resume is bit-identical like any other;
- ``train.py`` prints one line naming the file and the resume command and exits with status
  128 + the signal's number (143 for SIGTERM), never 0: a scheduler sees the job did not finish;
- data loader workers ignore these signals (``stylegan.data.celeba.worker_init``) and are shut
  down by the main process as it exits, so no "DataLoader worker ... is killed by
  signal" traceback interrupts the step or the save.

Under submitit (``hydra/launcher=submitit_slurm``) its pre-timeout signal (USR2 unless
``SUBMITIT_PREEMPT_SIGNAL`` says otherwise) is handled the same way, and after the save submitit's
own handler runs: it requeues the job with the same arguments (``scontrol requeue``), and the
requeued job resumes from this run's ``last.ckpt`` by itself (:func:`requeued_checkpoint`).
Lightning's own SLURM handler (``SLURMEnvironment(auto_requeue=True)``) would save mid-step from
inside the signal handler; this callback replaces it for SIGUSR1.
"""

import logging
import os
import shlex
import signal
import sys
import threading
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.utilities.exceptions import SIGTERMException

from stylegan.errors import UserError

# SIGUSR1 is POSIX only (Windows has SIGTERM alone).
STOP_SIGNALS = tuple(
    getattr(signal, name) for name in ("SIGTERM", "SIGUSR1") if hasattr(signal, name)
)


def _submitit_signal() -> signal.Signals | None:
    """The signal submitit requeues on, when this process is a submitit job; else None."""
    if "SUBMITIT_EXECUTOR" not in os.environ:
        return None
    name = os.environ.get("SUBMITIT_PREEMPT_SIGNAL", "USR2")
    return getattr(signal, f"SIG{name}", None)


def requeued_checkpoint(output_dir: str | os.PathLike) -> Path | None:
    """``last.ckpt`` of this run's folder when SLURM restarted (requeued) the job and one exists."""
    if int(os.environ.get("SLURM_RESTART_COUNT", "0") or 0) <= 0:
        return None
    last = Path(output_dir) / "checkpoints" / "last.ckpt"
    return last if last.is_file() else None


def resume_command(ckpt: Path) -> str:
    """The command that resumes this run: the same overrides, ``ckpt_path=`` the new file."""
    try:
        from hydra.core.hydra_config import HydraConfig

        overrides = [o for o in HydraConfig.get().overrides.task if not o.startswith("ckpt_path=")]
        args = " ".join(shlex.quote(o) for o in overrides)
    except ValueError:  # not run through Hydra's main (tests call train(cfg) directly)
        args = "<the same overrides>"
    return f"python train.py {args} ckpt_path={shlex.quote(str(ckpt))}".replace("  ", " ")


class Preemption(L.Callback):
    """Stops at the end of the step on SIGTERM / SIGUSR1 with a fresh ``last.ckpt`` (see module)."""

    def __init__(self) -> None:
        self.signum: int | None = None  # the first stop signal received
        self.saved: Path | None = None  # the last.ckpt written on it
        self.images_seen = 0
        self.error: UserError | None = None  # why the save failed (disk full, NaN state)
        self._previous: dict[int, Any] = {}
        self._requeue: Any = None  # submitit's handler, run after the save

    # ------------------------------------------------------------------ signals
    def on_train_start(self, trainer: L.Trainer, pl_module: Any) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        # Lightning registered its handler (it raises SIGTERMException between steps) just before.
        logging.getLogger("lightning.pytorch.trainer.connectors.signal_connector").setLevel(
            logging.WARNING
        )  # its "Received SIGTERM" line: ours says more
        requeue_signal = _submitit_signal()
        signals = [*STOP_SIGNALS, *([requeue_signal] if requeue_signal else [])]
        for signum in dict.fromkeys(signals):
            self._previous[signum] = signal.getsignal(signum)
            if signum == requeue_signal and callable(self._previous[signum]):
                self._requeue = self._previous[signum]
            signal.signal(signum, self._handle)

    def _handle(self, signum: int, frame: Any) -> None:
        if self.signum is None:
            self.signum = signum
        lightning_handler = self._previous.get(signal.SIGTERM)
        if callable(lightning_handler):
            lightning_handler(signal.SIGTERM, frame)  # sets trainer.received_sigterm

    def teardown(self, trainer: L.Trainer, pl_module: Any, stage: str) -> None:
        if threading.current_thread() is threading.main_thread():
            for signum, handler in self._previous.items():
                if handler is not None:
                    signal.signal(signum, handler)
        self._previous = {}

    # ------------------------------------------------------------------ the save
    def on_exception(self, trainer: L.Trainer, pl_module: Any, exception: BaseException) -> None:
        if not isinstance(exception, SIGTERMException):
            return
        if self.signum is None:  # Lightning's handler alone (a signal before training started)
            self.signum = signal.SIGTERM
        periodic = next((cb for cb in trainer.callbacks if hasattr(cb, "last_path")), None)
        path = (
            periodic.last_path
            if periodic is not None
            else Path(trainer.default_root_dir) / "checkpoints" / "last.ckpt"
        )
        try:
            trainer.save_checkpoint(path, weights_only=False)  # every rank calls it; rank 0 writes
        except UserError as error:  # a failed write or a diverged state: reported by stop()
            self.error = error
            return
        self.saved, self.images_seen = path, int(pl_module.images_seen)

    def stop(self, trainer: L.Trainer) -> None:
        """After ``fit`` ended on the signal: one line, then requeue (submitit) or exit non-zero."""
        if self.error is not None:
            raise self.error
        name = signal.Signals(self.signum).name
        if trainer.is_global_zero:
            print(
                f"stopped by {name} at kimg {self.images_seen / 1000:.3f}: saved {self.saved}; "
                f"resume with: {resume_command(self.saved)}",
                file=sys.stderr,
                flush=True,
            )
        if self._requeue is not None and self.signum == _submitit_signal():
            self._requeue(self.signum, None)  # submitit: scontrol requeue, then exits
        raise SystemExit(128 + int(self.signum))
