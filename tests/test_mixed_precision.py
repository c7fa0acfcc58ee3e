"""fp16 mixed precision (``16-mixed``), exercised on the CPU: CPU autocast runs fp16 and
``torch.amp.GradScaler("cpu")`` scales like the CUDA one. Lightning maps ``16-mixed`` on a CPU to
bf16, so these runs pass its ``MixedPrecision`` plugin explicitly (``fp16_on_cpu`` in conftest)."""

import pytest
import torch

from stylegan import losses
from stylegan.callbacks import DivergenceError
from stylegan.callbacks.divergence import FP16_PATIENCE
from stylegan.networks import Discriminator
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


# ---------------------------------------------------------------------------- fp16 penalties
def _penalty_parameter_gradients(kind: str, gamma: float, scale, half: bool):
    """D's parameter gradients of the penalty term, as a GradScaler at ``scale`` computes them:
    the penalty's input gradients at that scale, the total backward scaled by it, then unscaled."""
    torch.manual_seed(0)
    D = Discriminator(resolution=32, channel_base=1024, channel_max=64)
    draw = torch.Generator().manual_seed(1)
    real = torch.rand(8, 3, 32, 32, generator=draw) * 2 - 1
    fake = torch.rand(8, 3, 32, 32, generator=draw) * 2 - 1
    with torch.autocast("cpu", dtype=torch.float16, enabled=half):
        if kind == "r1":
            x = real.clone().requires_grad_(True)
            penalty = gamma / 2 * losses.r1_penalty(D(x).float(), x, grad_scale=scale)
        else:
            interpolate = torch.Generator().manual_seed(2)
            penalty = gamma * losses.gradient_penalty(
                lambda x: D(x).float(), real, fake, grad_scale=scale, generator=interpolate
            )
    (penalty * scale).backward()
    return torch.cat([p.grad.flatten() for p in D.parameters() if p.grad is not None]) / scale


@pytest.mark.parametrize(
    ("kind", "gamma"), [("r1", 0.1), ("r1", 10.0), ("gp", 10.0)], ids=["r1-0.1", "r1-10", "gp"]
)
def test_fp16_penalties_match_fp32(kind, gamma):
    """At the GradScaler's initial scale 2^16 (the 0-d tensor the module passes), the fp16
    penalty gradients are finite, within 3e-2 of fp32 (relative L2; fp16's own floor on this D is
    1.4e-2 for R1 and 2.3e-2 for GP, the same at 2^10), and no more of them underflow to 0 than
    in fp32 (R1 at gamma 0.1 included; with no scaling at all 18 % of them would)."""
    scale = torch.tensor(2.0**16)
    fp32 = _penalty_parameter_gradients(kind, gamma, 1.0, half=False)
    fp16 = _penalty_parameter_gradients(kind, gamma, scale, half=True)
    assert fp16.isfinite().all()
    assert ((fp16 - fp32).norm() / fp32.norm()).item() < 3e-2
    assert (fp16 == 0).float().mean() <= (fp32 == 0).float().mean() + 1e-3
