"""No host sync in a training step that does not log: over 20 steps nothing reads a tensor back
to the host (``Tensor.item``, ``tolist``, ``bool()``, ``float()``, ``int()``) and nothing calls
``torch.cuda.synchronize``. On a GPU each of those waits for the device; here they are counted
on the CPU by monkeypatching them, with the default callbacks of ``conf/callbacks/default.yaml``
(``KimgProgressBar`` aside: it is tested on its own; Lightning's stock bar is counted)."""

import pytest

import train as train_module
from train import train

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
