"""One progress bar for the whole run, in what training is measured in: time budget or kimg.

Lightning's bar counts batches per epoch, and here an epoch ends at each resolution change. This
bar is created once when training starts and never restarts. Under ``trainer.max_time`` its total
and ETA are the time budget (elapsed and remaining as Lightning's timer counts them, so a resumed
run continues its clock); otherwise the total is ``stage.total_kimg`` and the ETA comes from the
recent images per second. Beside it: kimg, img/s, resolution, alpha and the latest logged D/G
losses. A background thread redraws it every ``refresh_seconds``, so a slow step (a minute per
batch of paper widths on a CPU) still shows the clock moving.

It never syncs the device: kimg comes from the module's Python counter, and the losses are read
once per logging step from what the logger already received.
"""

from __future__ import annotations

import sys
import threading
import time
from collections import deque
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import ProgressBar, Timer
from tqdm.auto import tqdm

from stylegan.errors import ConfigError


def format_seconds(seconds: float) -> str:
    """``[H:]MM:SS`` like tqdm's clock."""
    seconds = max(0, round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"


class RateMeter:
    """Images per second over the last ``window`` seconds of (time, images) readings."""

    def __init__(self, window: float = 30.0) -> None:
        self.window = window
        self.readings: deque[tuple[float, int]] = deque()

    def add(self, now: float, images: int) -> None:
        self.readings.append((now, images))
        while len(self.readings) > 2 and now - self.readings[1][0] > self.window:
            self.readings.popleft()

    def rate(self) -> float | None:
        if len(self.readings) < 2:
            return None
        (t0, i0), (t1, i1) = self.readings[0], self.readings[-1]
        return (i1 - i0) / (t1 - t0) if t1 > t0 and i1 > i0 else None


class KimgProgressBar(ProgressBar):
    """The run's single bar: elapsed<remaining, kimg, img/s, resolution, alpha, D/G loss."""

    def __init__(self, *, total_kimg: float, refresh_seconds: float = 1.0) -> None:
        super().__init__()
        if refresh_seconds <= 0:
            raise ConfigError(
                f"callbacks.progress_bar.refresh_seconds must be > 0, got {refresh_seconds}"
            )
        self.total_kimg = float(total_kimg)
        self.refresh_seconds = float(refresh_seconds)
        self._enabled = True
        self.bar: tqdm | None = None
        self._timer: Timer | None = None
        self._rate = RateMeter()
        self._started = 0.0
        self._images = 0
        self._resolution = 0
        self._alpha = 1.0
        self._losses: dict[str, float] = {}
        self._last_logged: dict[str, Any] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ Lightning's switches
    def disable(self) -> None:
        self._enabled = False

    def enable(self) -> None:
        self._enabled = True

    @property
    def is_enabled(self) -> bool:
        return self._enabled and self.bar is not None

    # ------------------------------------------------------------------ what the bar says
    def elapsed_and_total(self) -> tuple[float, float | None]:
        """Seconds of training so far and the budget in seconds (None without max_time)."""
        if self._timer is not None:
            elapsed = self._timer.time_elapsed("train")
            remaining = self._timer.time_remaining("train")
            if remaining is not None:
                return elapsed, elapsed + remaining
        return time.monotonic() - self._started, None

    def remaining_seconds(self) -> float | None:
        """The ETA: the rest of the time budget, else the rest of total_kimg at the recent rate."""
        elapsed, budget = self.elapsed_and_total()
        if budget is not None:
            return max(budget - elapsed, 0.0)
        rate = self._rate.rate()
        if rate is None:
            return None
        return max(self.total_kimg * 1000 - self._images, 0) / rate

    def line(self) -> tuple[str, str]:
        """(description, postfix) of the bar now."""
        elapsed, _ = self.elapsed_and_total()
        remaining = self.remaining_seconds()
        rate = self._rate.rate()
        eta = "?" if remaining is None else format_seconds(remaining)
        parts = [
            f"{format_seconds(elapsed)}<{eta}",
            f"{self._images / 1000:.1f} kimg",
            f"{rate:.1f} img/s" if rate is not None else "- img/s",
        ]
        parts += [f"{name}={value:.3g}" for name, value in self._losses.items()]
        return f"{self._resolution}px α={self._alpha:.2f}", " ".join(parts)

    def draw(self) -> None:
        with self._lock:
            if self.bar is None:
                return
            elapsed, budget = self.elapsed_and_total()
            if budget is not None:
                self.bar.total = round(budget)
                self.bar.n = min(round(elapsed), round(budget))
            else:
                self.bar.total = round(self.total_kimg, 3)
                self.bar.n = min(round(self._images / 1000, 3), self.bar.total)
            description, postfix = self.line()
            # Literal text around tqdm's bar (its {postfix} field would prepend ", ").
            escape = lambda text: text.replace("{", "{{").replace("}", "}}")  # noqa: E731
            self.bar.bar_format = f"{escape(description)} |{{bar}}| {escape(postfix)}"
            self.bar.refresh()

    # ------------------------------------------------------------------ hooks
    def on_train_start(self, trainer: L.Trainer, pl_module: Any) -> None:
        if not self._enabled or not trainer.is_global_zero:
            return
        timers = [cb for cb in trainer.callbacks if isinstance(cb, Timer)]
        self._timer = timers[0] if timers else None
        self._started = time.monotonic()
        self._observe(trainer, pl_module)
        self.bar = tqdm(
            total=1,
            file=sys.stderr,
            dynamic_ncols=True,
            leave=True,
            bar_format="|{bar}|",
        )
        self.draw()
        self._stop.clear()
        self._thread = threading.Thread(target=self._redraw_loop, name="progress-bar", daemon=True)
        self._thread.start()

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: Any, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if self.bar is not None:
            self._observe(trainer, pl_module)

    def on_train_end(self, trainer: L.Trainer, pl_module: Any) -> None:
        self._close()

    def on_exception(self, trainer: L.Trainer, pl_module: Any, exception: BaseException) -> None:
        self._close()

    def teardown(self, trainer: L.Trainer, pl_module: Any, stage: str) -> None:
        self._close()

    # ------------------------------------------------------------------ internals
    def _observe(self, trainer: L.Trainer, pl_module: Any) -> None:
        self._images = int(pl_module.images_seen)
        self._resolution = int(pl_module.resolution)
        self._alpha = float(pl_module.alpha)
        self._rate.add(time.monotonic(), self._images)
        logged = trainer.logged_metrics
        for key, name in (("loss/d", "d"), ("loss/g", "g")):
            value = logged.get(key)
            # A new object only at a logging step, which the logger has already read: no sync.
            if value is not None and value is not self._last_logged.get(key):
                self._last_logged[key] = value
                self._losses[name] = float(value)

    def _redraw_loop(self) -> None:
        while not self._stop.wait(self.refresh_seconds):
            self.draw()

    def _close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        if self.bar is not None:
            self.draw()
            with self._lock:
                self.bar.close()
                self.bar = None
