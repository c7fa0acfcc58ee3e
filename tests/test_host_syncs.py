"""No host sync in a training step that does not log: over 20 steps nothing reads a tensor back
to the host (``Tensor.item``, ``tolist``, ``bool()``, ``float()``, ``int()``) and nothing calls
``torch.cuda.synchronize``. On a GPU each of those waits for the device; here they are counted
on the CPU by monkeypatching them, with the default callbacks of ``conf/callbacks/default.yaml``
(``KimgProgressBar`` aside: it is tested on its own; Lightning's stock bar is counted)."""

import sys
import traceback
from collections import Counter
from typing import Any

import lightning as L
import pytest
import torch
from torch.optim.optimizer import _get_value

import stylegan.module
import train as train_module
from train import train

READS = ("item", "tolist", "__bool__", "__float__", "__int__")
# The module's two host-side draws (mixing on/off, crossover layer) come from CPU tensors by
# construction, on every device: reading them is no sync.
# Adam's step counts are CPU tensors too (torch keeps them there unless fused or capturable).
HOST_SIDE = {stylegan.module.host_random.__code__, _get_value.__code__}
STEPS = 20


class SyncCounter(L.Callback):
    """Counts device reads from the start of batch ``first`` to the start of ``first + STEPS``."""

    def __init__(self, first: int = 2) -> None:
        self.first = first
        self.counting = False
        self.calls: Counter = Counter()
        self.windows = 0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if batch_idx == self.first:
            self.counting = True
        elif batch_idx == self.first + STEPS:
            self.counting = False
            self.windows += 1

    def record(self, what: str) -> None:
        if self.counting and sys._getframe(2).f_code not in HOST_SIDE:
            where = traceback.extract_stack(limit=4)[0]
            self.calls[
                f"{what} at {where.filename.split('site-packages/')[-1]}:{where.lineno}"
            ] += 1


@pytest.fixture
def count_syncs(monkeypatch):
    counter = SyncCounter()

    def wrap(name: str, real: Any) -> Any:
        def counted(self, *args, **kwargs):
            counter.record(name)
            return real(self, *args, **kwargs)

        return counted

    for name in READS:
        monkeypatch.setattr(torch.Tensor, name, wrap(name, getattr(torch.Tensor, name)))
    monkeypatch.setattr(torch.cuda, "synchronize", lambda *a, **k: counter.record("synchronize"))
    real_build = train_module.build_callbacks
    monkeypatch.setattr(
        train_module, "build_callbacks", lambda *a, **k: [*real_build(*a, **k), counter]
    )
    return counter


NO_LOG_STEP = (
    "trainer.log_every_n_steps=1000",  # logging steps read values back by design
    "stage.total_kimg=0.4",  # 25 steps at 8px: no resolution change in the window
    "callbacks.checkpoint.every_kimg=100",
    "callbacks.samples=null",
)


@pytest.mark.parametrize(
    "overrides",
    [
        (),
        ("loss=bce", "loss.r1_gamma=1", "augment=ada"),
        # Lightning's own bar reads every progress-bar value back at every refresh (each step)
        ("trainer.enable_progress_bar=true",),
    ],
    ids=["wgan_gp", "bce-r1-ada", "lightning-bar"],
)
def test_training_steps_never_sync(train_config, count_syncs, overrides):
    train(train_config(*NO_LOG_STEP, *overrides))
    assert count_syncs.windows == 1
    assert not count_syncs.calls, dict(count_syncs.calls)


def test_fp16_training_steps_never_sync(train_config, count_syncs, fp16_on_cpu):
    train(train_config(*NO_LOG_STEP, "trainer.precision=null"))
    assert count_syncs.windows == 1
    assert not count_syncs.calls, dict(count_syncs.calls)


def test_the_throughput_callback_never_synchronizes(train_config):
    """Lightning's ThroughputMonitor calls torch.cuda.synchronize at every batch end on a GPU
    (a CPU run cannot see that call), so the default callbacks must not include it."""
    callbacks = train_module.build_callbacks(
        train_config(), train_module.build_schedule(train_config().stage)
    )
    assert not [cb for cb in callbacks if type(cb).__name__ == "ThroughputMonitor"]
