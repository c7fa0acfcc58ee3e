"""The GPU invariants (``pytest -m cuda``; skipped, and counted as skipped, without CUDA): no host
sync in a step that does not log, finite smoke runs on ``trainer=gpu`` and on ``trainer=ddp`` with
one device (NCCL), FID on CUDA equal to the CPU's, and compile's graphs per resolution.
``benchmarks/gpu_check.py`` measures the same on a bigger scale and prints the figures."""

import warnings
from pathlib import Path

import lightning as L
import pytest
import torch
from test_host_syncs import NO_LOG_STEP

import stylegan.module as module_mod
from stylegan.checkpoints import safe_torch_load
from train import train

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]


class SyncDebugWindow(L.Callback):
    """``torch.cuda.set_sync_debug_mode("warn")`` from batch 2 to batch 22, and its warnings."""

    def __init__(self) -> None:
        self.messages: list[str] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if batch_idx == 2:
            self._caught = warnings.catch_warnings(record=True)
            self._log = self._caught.__enter__()
            warnings.simplefilter("always")
            torch.cuda.set_sync_debug_mode("warn")
        elif batch_idx == 22:
            torch.cuda.set_sync_debug_mode("default")
            self.messages = [str(w.message) for w in self._log if "synchroniz" in str(w.message)]
            self._caught.__exit__(None, None, None)


@pytest.mark.parametrize("precision", ["32-true", "bf16-mixed", "16-mixed"])
def test_cuda_steps_never_sync(train_config, count_syncs, monkeypatch, precision):
    import train as train_module

    debug = SyncDebugWindow()
    real_build = train_module.build_callbacks
    monkeypatch.setattr(
        train_module, "build_callbacks", lambda *a, **k: [*real_build(*a, **k), debug]
    )
    train(train_config(*NO_LOG_STEP, "trainer=gpu", f"trainer.precision={precision}"))
    assert count_syncs.windows == 1
    assert not count_syncs.calls, dict(count_syncs.calls)
    assert not debug.messages, debug.messages[:3]


def _finite(ckpt: Path) -> bool:
    state = safe_torch_load(ckpt)["state_dict"]
    return all(bool(t.isfinite().all()) for t in state.values() if t.is_floating_point())


@pytest.mark.parametrize("trainer", [["trainer=gpu"], ["trainer=ddp", "trainer.devices=1"]])
def test_cuda_smoke_200_steps_are_finite(train_config, tmp_path, trainer):
    train(train_config(*trainer, "stage.total_kimg=3.2", "callbacks.samples=null"))
    last = tmp_path / "checkpoints" / "last.ckpt"
    assert safe_torch_load(last)["stylegan"]["progress"]["images_seen"] == 3200
    assert _finite(last)


def test_cuda_fid_equals_the_cpu_fid(smoke_run, celeba_root, tmp_path):
    from conftest import ROOT, compose_config

    from fid import evaluate_fid

    values = {}
    for device in ("cuda", "cpu"):
        cfg = compose_config(
            "fid",
            [
                f"ckpt={smoke_run / 'generator.pt'}",
                f"data.root={celeba_root}",
                "num_images=500",
                "metrics=fid",
                # The per-pixel noise comes from each device's own RNG: with noise=random the two
                # values compared two samples (326.06 vs 326.42 on an H200), not two devices.
                "noise=const",
                f"device={device}",
                f"paths.cache_dir={tmp_path / device}",  # each device computes its statistics
                f"paths.root_dir={ROOT}",
            ],
        )
        values[device] = evaluate_fid(cfg)["fid"]
    assert abs(values["cuda"] - values["cpu"]) <= 1e-3 * abs(values["cpu"]), values


def test_cuda_compile_has_two_graphs_per_network_per_resolution(train_config, monkeypatch):
    from torch._inductor.compile_fx import compile_fx

    graphs: dict[str, int] = {}
    real_compile = torch.compile

    def counted(fn, **kwargs):
        name = type(fn.__self__).__name__

        def backend(gm, example_inputs):
            graphs[name] = graphs.get(name, 0) + 1
            return compile_fx(gm, example_inputs)

        return real_compile(fn, backend=backend, **kwargs)

    monkeypatch.setattr(module_mod.torch, "compile", counted)
    torch._dynamo.reset()
    train(
        train_config(
            "trainer=gpu",
            "training.compile=true",
            "stage=16px",
            "stage.fade_kimg=0.064",
            "stage.stable_kimg=0.064",
            "stage.total_kimg=0.25",
            "callbacks.samples=null",
        )
    )
    # wgan_gp (the default): D's joint real+fake pass and its G-step pass, as synthesis's two.
    expected = 2 * module_mod.SYNTHESIS_GRAPHS_PER_RESOLUTION
    assert graphs == {"SynthesisNetwork": expected, "Discriminator": expected}
