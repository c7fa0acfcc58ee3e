"""GAN losses as small pure functions of tensors.

WGAN-GP (Gulrajani et al. 2017) with the ProGAN drift term, and the non-saturating logistic loss
(BCE with logits) with the optional R1 penalty (Mescheder et al. 2018). Penalties take a
``discriminator`` callable so they can differentiate through it; everything else takes logits.
Under fp16 mixed precision pass the GradScaler's scale as ``grad_scale`` so the input gradients of
a penalty neither underflow nor overflow (see :func:`input_gradients`).
"""

from collections.abc import Callable
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

Critic = Callable[[Tensor], Tensor]


def wgan_d_loss(real_logits: Tensor, fake_logits: Tensor) -> Tensor:
    """Critic loss E[D(fake)] - E[D(real)]."""
    return fake_logits.mean() - real_logits.mean()


def wgan_g_loss(fake_logits: Tensor) -> Tensor:
    """Generator loss -E[D(fake)]."""
    return -fake_logits.mean()


def drift_penalty(real_logits: Tensor) -> Tensor:
    """E[D(real)^2]: keeps the critic's output near zero (ProGAN's epsilon-drift term)."""
    return real_logits.square().mean()


def input_gradients(logits: Tensor, inputs: Tensor, *, grad_scale: float | Tensor = 1.0) -> Tensor:
    """dD/dx per sample, with a graph so a penalty built from it can be back-propagated.

    ``logits`` must come from ``inputs`` (which require grad). Returned in fp32 whatever the
    autocast dtype, because the squared norms of small gradients underflow in half precision.

    Under fp16, ``grad_scale`` is the GradScaler's scale S (a float or a 0-d tensor). Each logit's
    gradient is S / N, what the scaled backward of a batch-mean loss gives it: the scaler's
    calibration then covers this pass too (an overflow here makes the step non-finite, so it
    backs off). ``logits.sum() * S`` would give each logit S, which is inf in fp16 at the
    initial 2^16 (fp16's largest value is 65,504)."""
    cotangent = grad_scale / logits.shape[0] if logits.dim() else grad_scale
    (grads,) = torch.autograd.grad(
        outputs=logits.sum() * cotangent, inputs=inputs, create_graph=True
    )
    return grads.float() / cotangent


def gradient_penalty(
    discriminator: Critic,
    real: Tensor,
    fake: Tensor,
    *,
    grad_scale: float | Tensor = 1.0,
    generator: torch.Generator | None = None,
) -> Tensor:
    """E[(||grad D(x_hat)||_2 - 1)^2] on random interpolates x_hat between real and fake."""
    eps = torch.rand(
        real.shape[0], 1, 1, 1, device=real.device, dtype=real.dtype, generator=generator
    )
    # Under autocast the fakes may come out in half precision; interpolate in the reals' dtype.
    interpolates = torch.lerp(fake.detach().to(real.dtype), real.detach(), eps)  # a new leaf
    interpolates.requires_grad_(True)
    grads = input_gradients(discriminator(interpolates), interpolates, grad_scale=grad_scale)
    norms = grads.flatten(1).norm(2, dim=1)
    return (norms - 1.0).square().mean()


def logistic_d_loss(real_logits: Tensor, fake_logits: Tensor) -> Tensor:
    """BCE with logits: real labelled 1, fake labelled 0 (= softplus(-D(x)) + softplus(D(G(z))))."""
    real_term = F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits))
    fake_term = F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits))
    return real_term + fake_term


def logistic_g_loss(fake_logits: Tensor) -> Tensor:
    """Non-saturating generator loss: BCE of D(G(z)) against the real label."""
    return F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits))


def r1_penalty(real_logits: Tensor, real: Tensor, *, grad_scale: float | Tensor = 1.0) -> Tensor:
    """E[||grad D(x)||^2] on reals (multiply by gamma/2 in the caller).

    Takes the logits of the D(real) pass the main loss already ran (``real`` must require grad
    before that pass), so R1 costs a double backward but no second forward."""
    grads = input_gradients(real_logits, real, grad_scale=grad_scale)
    return grads.square().flatten(1).sum(dim=1).mean()


# ----------------------------------------------------------------------------------------------
# D's loss composition.


class Penalty(NamedTuple):
    """D's regularizer: which one, its weight in the total loss, and how often it runs."""

    name: str | None  # "gp" (WGAN-GP), "r1", or None (no penalty)
    weight: float  # gp_weight, or gamma / 2 for R1
    interval: int  # lazy regularization: every N D steps, scaled by N; 1 = every step

    def due(self, d_step: int) -> bool:
        """Whether the penalty runs at D step ``d_step`` (0, N, 2N, ...)."""
        return self.name is not None and d_step % self.interval == 0

    @property
    def adam_ratio(self) -> float:
        """StyleGAN2's lazy-regularization correction of D's Adam lr and betas: N / (N + 1)."""
        return self.interval / (self.interval + 1) if self.interval > 1 else 1.0


def discriminator_penalty(
    loss: str, *, gp_weight: float, gp_interval: int, r1_gamma: float, r1_interval: int
) -> Penalty:
    """The one place that decides whether D's loss has a penalty: WGAN-GP always has its
    gradient penalty; the logistic loss has R1 when ``r1_gamma > 0``."""
    if loss == "wgan_gp":
        return Penalty("gp", gp_weight, gp_interval)
    if r1_gamma > 0:
        return Penalty("r1", r1_gamma / 2, r1_interval)
    return Penalty(None, 0.0, 1)


def discriminator_loss(
    loss: str,
    real_logits: Tensor,
    fake_logits: Tensor,
    *,
    drift_weight: float,
    penalty: Penalty,
    penalty_value: Tensor | None,
) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
    """D's total loss, its main term and the named extra terms (``drift``, ``gp`` / ``r1``).

    ``wgan_gp``: ``wgan + drift_weight * drift``; ``bce``: the logistic loss. ``penalty_value``
    (given only at a step where ``penalty.due``) adds ``penalty.weight * value * penalty.interval``:
    a lazy penalty is scaled by its interval, so its average over N steps is the same."""
    terms: dict[str, Tensor] = {}
    if loss == "wgan_gp":
        main = wgan_d_loss(real_logits, fake_logits)
        terms["drift"] = drift_penalty(real_logits)
        total = main + drift_weight * terms["drift"]
    else:
        main = logistic_d_loss(real_logits, fake_logits)
        total = main
    if penalty_value is not None:
        total = total + penalty.weight * penalty_value * penalty.interval
        terms[str(penalty.name)] = penalty_value
    return total, main, terms
