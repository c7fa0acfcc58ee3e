"""fp16 mixed precision (``16-mixed``), exercised on the CPU: CPU autocast runs fp16 and
``torch.amp.GradScaler("cpu")`` scales like the CUDA one. Lightning maps ``16-mixed`` on a CPU to
bf16, so these runs pass its ``MixedPrecision`` plugin explicitly (``fp16_on_cpu`` in conftest)."""

import pytest
import torch

from stylegan.callbacks import DivergenceError
from stylegan.callbacks.divergence import FP16_PATIENCE
from train import train


def _nan_batches(monkeypatch, first: int, last: int) -> None:
    """Batches number ``first`` .. ``last`` of the run are all NaN (their D loss is NaN)."""
    from stylegan.data import CelebADataModule

    real = CelebADataModule.on_after_batch_transfer
    calls = []

    def poisoned(self, batch, dataloader_idx):
        batch = real(self, batch, dataloader_idx)
        calls.append(1)
        return torch.full_like(batch, float("nan")) if first <= len(calls) <= last else batch

    monkeypatch.setattr(CelebADataModule, "on_after_batch_transfer", poisoned)


FP16_RUN = ("trainer.precision=null", "stage.total_kimg=0.6", "callbacks.samples=null")


def test_fp16_stops_when_the_grad_scaler_keeps_skipping(train_config, fp16_on_cpu, monkeypatch):
    """Every batch from the 5th on is NaN: the scaler would skip every D step and halve its scale
    without end while the weights stay finite; the guard stops the run with one line."""
    _nan_batches(monkeypatch, 5, 10**9)
    with pytest.raises(DivergenceError) as error:
        train(train_config(*FP16_RUN))
    message = str(error.value)
    assert "\n" not in message
    assert "training diverged at kimg 0.064: the discriminator loss" in message, message
    assert f"GradScaler skipped at least {FP16_PATIENCE} steps in a row" in message


def test_fp16_rides_out_a_transient_overflow(train_config, fp16_on_cpu, monkeypatch, tmp_path):
    """One NaN batch is one skipped step, which the scaler handles: the run finishes."""
    _nan_batches(monkeypatch, 5, 5)
    train(train_config(*FP16_RUN))
    assert (tmp_path / "checkpoints" / "last.ckpt").is_file()
