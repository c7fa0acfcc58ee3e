"""The divergence guard: no non-finite state is ever written over a finite one.

Before every optimizer step (Lightning's ``on_before_optimizer_step``, which manual optimization
runs too) the guard reduces that step's gradients to one on-device flag: a NaN or Inf in a loss
makes its gradients non-finite. What happens then is ``training.on_nonfinite``:

- ``stop`` (default): the flag is only accumulated on the device (no host sync per step) and read
  on logging steps, at epoch ends, at the end of training and before every checkpoint write; a
  non-finite flag stops training with one :class:`DivergenceError` line naming the kimg, the loss,
  and the last finite checkpoint. Nothing is written after the divergence: ``last.ckpt``, the
  periodic checkpoints, ``best.ckpt`` and ``generator.pt`` keep the last finite state.
- ``skip_step``: the flag is read every step (one sync per optimizer step) and a non-finite step
  is dropped: its gradients are cleared, so Adam leaves those weights and moments untouched.
  Each skip is one warning line.

Under fp16 mixed precision (``16-mixed``) the GradScaler skips a step whose (unscaled) gradients
are non-finite and halves its scale: a transient fp16 overflow is normal and costs one step. A NaN
that persists (an overflow in the synthesis network, a NaN in the weights' inputs) would make it
skip every step forever while the weights stay finite, so there the flag is raised only after
``FP16_PATIENCE`` non-finite steps in a row of one optimizer (counted on the device, read like
the flag): the scale has then fallen from 2^16 to 2^-4, where no finite gradient overflows fp16.
The policy does not matter there (the scaler is what skips); the line says how many steps in a
row were skipped and from which kimg.

Independently of the policy, every checkpoint's weights are checked before it is written
(``on_save_checkpoint``), so a state that went non-finite some other way (e.g. an lr so large the
weights overflow) is never saved either.
"""

import math
from typing import Any

import lightning as L
import torch
from lightning.pytorch.utilities import rank_zero_warn

from stylegan.errors import ConfigError, UserError

POLICIES = ("stop", "skip_step")
FP16_PATIENCE = 20  # non-finite fp16 steps in a row (scale 2^16 -> 2^-4) that mean divergence
_LOSSES = (
    "the generator loss (loss/g)",
    "the discriminator loss (loss/d with its penalties)",
)


class DivergenceError(UserError):
    """Training produced NaN/Inf; the message says where and which checkpoint is still good."""


class DivergenceGuard(L.Callback):
    """Stops (or skips) on non-finite losses; never lets a non-finite state reach a checkpoint."""

    def __init__(self, *, policy: str = "stop") -> None:
        if policy not in POLICIES:
            raise ConfigError(
                f"training.on_nonfinite must be {' or '.join(POLICIES)}, got {policy!r}"
            )
        self.policy = policy
        self.skipped_steps = 0
        self._bad: torch.Tensor | None = None  # [2] bool: G's / D's gradients were non-finite
        self._first_bad_images: torch.Tensor | None = None  # [2] images seen at the first one
        self._streak: torch.Tensor | None = None  # [2] fp16: non-finite steps in a row
        self._streak_start: torch.Tensor | None = None  # [2] fp16: images seen as it began
        self._fp16 = False

    # ------------------------------------------------------------------ per step
    def on_train_start(self, trainer: L.Trainer, pl_module: Any) -> None:
        self._bad = torch.zeros(2, dtype=torch.bool, device=pl_module.device)
        self._first_bad_images = torch.full((2,), -1, dtype=torch.long, device=pl_module.device)
        self._streak = torch.zeros(2, dtype=torch.long, device=pl_module.device)
        self._streak_start = torch.full((2,), -1, dtype=torch.long, device=pl_module.device)
        scaler = getattr(trainer.precision_plugin, "scaler", None)
        self._fp16 = scaler is not None and scaler.is_enabled()

    def on_before_optimizer_step(
        self, trainer: L.Trainer, pl_module: Any, optimizer: torch.optim.Optimizer
    ) -> None:
        grads = [p.grad for g in optimizer.param_groups for p in g["params"] if p.grad is not None]
        if not grads or self._bad is None:
            return
        # One fused L2 norm per tensor: NaN/Inf survive it (so would a gradient above ~1e19,
        # whose square overflows: that run has diverged too). Max-abs is several times slower.
        # Under fp16 Lightning has unscaled the gradients already: this is the scaler's found_inf.
        finite = torch.stack(torch._foreach_norm(grads)).isfinite().all()
        which = 0 if optimizer is trainer.optimizers[0] else 1
        if self._fp16:  # the GradScaler skips this step itself; stop only if it keeps skipping
            starts = self._streak[which] == 0
            self._streak[which] = torch.where(finite, 0, self._streak[which] + 1)
            self._streak_start[which] = torch.where(
                finite, -1, torch.where(starts, pl_module.images_seen, self._streak_start[which])
            )
            persistent = self._streak[which] >= FP16_PATIENCE
            newly = persistent & ~self._bad[which]
            self._first_bad_images[which] = torch.where(
                newly, self._streak_start[which], self._first_bad_images[which]
            )
            self._bad[which] |= persistent
            return
        if self.policy == "skip_step":
            if not bool(finite):  # one sync per step: the price of deciding now
                for group in optimizer.param_groups:
                    for p in group["params"]:
                        p.grad = None  # Adam skips parameters without a gradient
                self.skipped_steps += 1
                rank_zero_warn(
                    f"skipped a non-finite step at kimg {pl_module.images_seen / 1000:.3f}: "
                    f"{_LOSSES[which]} is NaN/Inf ({self.skipped_steps} skipped so far)"
                )
            return
        newly = ~finite & ~self._bad[which]
        self._first_bad_images[which] = torch.where(
            newly, pl_module.images_seen, self._first_bad_images[which]
        )
        self._bad[which] |= ~finite

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: Any, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        connector = getattr(trainer, "_logger_connector", None)
        if getattr(connector, "should_update_logs", True):  # the step syncs for logging anyway
            self.check(trainer, pl_module)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: Any) -> None:
        self.check(trainer, pl_module)

    def on_train_end(self, trainer: L.Trainer, pl_module: Any) -> None:
        self.check(trainer, pl_module)  # before generator.pt is exported

    # ------------------------------------------------------------------ checkpoints
    def on_save_checkpoint(
        self, trainer: L.Trainer, pl_module: Any, checkpoint: dict[str, Any]
    ) -> None:
        self.check(trainer, pl_module)
        bad = [
            name
            for name, tensor in checkpoint.get("state_dict", {}).items()
            if torch.is_tensor(tensor)
            and tensor.is_floating_point()
            and not bool(tensor.isfinite().all())
        ]
        if bad:
            raise DivergenceError(
                self._message(
                    trainer,
                    pl_module,
                    f"{len(bad)} weight tensor(s) are NaN/Inf (e.g. {bad[0]})",
                    pl_module.images_seen,
                )
            )

    # ------------------------------------------------------------------ reporting
    def check(self, trainer: L.Trainer, pl_module: Any) -> None:
        """Raise :class:`DivergenceError` if any step so far had non-finite gradients."""
        if self._bad is None or not bool(self._bad.any()):
            return
        first = self._first_bad_images.tolist()
        # The earliest; within one step D's update comes first (and poisons G's loss).
        which = min((w for w in (0, 1) if first[w] >= 0), key=lambda w: (first[w], w == 0))
        values = [
            f"{name}={float(value):g}"
            for name, value in trainer.callback_metrics.items()
            if name.startswith("loss/") and not math.isfinite(float(value))
        ]
        detail = f"{_LOSSES[which]} became NaN/Inf" + (f" ({', '.join(values)})" if values else "")
        if self._fp16:
            detail += (
                f" and the fp16 GradScaler skipped at least {FP16_PATIENCE} steps in a row "
                "(a NaN that persists, not an fp16 overflow it can scale away)"
            )
        raise DivergenceError(self._message(trainer, pl_module, detail, first[which]))

    def _message(self, trainer: L.Trainer, pl_module: Any, detail: str, images: int) -> str:
        last = next(
            (cb for cb in trainer.callbacks if hasattr(cb, "last_path")),
            None,
        )
        if last is not None and last.last_path.is_file():
            kimg = getattr(last, "last_saved_images", None)
            at = f" (kimg {kimg / 1000:.3f})" if kimg is not None and kimg >= 0 else ""
            good = f"the last finite checkpoint is {last.last_path}{at}; resume from it"
        else:
            good = "no finite checkpoint was written before it; restart"
        return (
            f"training diverged at kimg {images / 1000:.3f}: {detail}; stopped without saving "
            f"that state, {good} with a lower lr (training.lr_multiplier) or "
            "training.on_nonfinite=skip_step"
        )
