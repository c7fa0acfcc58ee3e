"""Losses against hand-computed values on tiny tensors."""

import math

import pytest
import torch

from stylegan import losses


def test_wgan_losses_and_drift_match_hand_values():
    real = torch.tensor([1.0, 2.0])
    fake = torch.tensor([0.5, -0.5])
    assert losses.wgan_d_loss(real, fake).item() == pytest.approx(0.0 - 1.5)
    assert losses.wgan_g_loss(fake).item() == pytest.approx(0.0)
    assert losses.drift_penalty(real).item() == pytest.approx((1 + 4) / 2)


def test_logistic_losses_match_softplus_formula():
    real = torch.tensor([0.0, 2.0])
    fake = torch.tensor([0.0, -1.0])
    softplus = lambda x: math.log1p(math.exp(x))  # noqa: E731
    expected_d = (softplus(-0.0) + softplus(-2.0)) / 2 + (softplus(0.0) + softplus(-1.0)) / 2
    assert losses.logistic_d_loss(real, fake).item() == pytest.approx(expected_d, rel=1e-6)
    expected_g = (softplus(-0.0) + softplus(1.0)) / 2
    assert losses.logistic_g_loss(fake).item() == pytest.approx(expected_g, rel=1e-6)


def test_gradient_penalty_of_linear_critic_is_norm_minus_one_squared():
    # D(x) = <w, x> has gradient w everywhere, so the penalty is (||w|| - 1)^2 = 4 for ||w|| = 3.
    w = torch.zeros(1, 3, 2, 2)
    w.view(-1)[:2] = torch.tensor([3.0 / math.sqrt(2), 3.0 / math.sqrt(2)])

    def critic(x):
        return (x * w).flatten(1).sum(1)

    real, fake = torch.randn(5, 3, 2, 2), torch.randn(5, 3, 2, 2)
    assert losses.gradient_penalty(critic, real, fake).item() == pytest.approx(4.0, rel=1e-5)


def test_gradient_penalty_matches_autograd_on_a_quadratic_critic():
    # D(x) = 0.5 * a * ||x||^2 has gradient a * x; compare with the interpolates built from the
    # same random draw and with the parameter gradient autograd gives for the closed form.
    a = torch.tensor(0.7, requires_grad=True)

    def critic(x):
        return 0.5 * a * x.flatten(1).square().sum(1)

    real, fake = torch.randn(4, 1, 3, 3), torch.randn(4, 1, 3, 3)
    gen = torch.Generator().manual_seed(0)
    penalty = losses.gradient_penalty(critic, real, fake, generator=gen)
    eps = torch.rand(4, 1, 1, 1, generator=torch.Generator().manual_seed(0))
    x_hat = torch.lerp(fake, real, eps)
    expected = (a * x_hat.flatten(1).norm(dim=1) - 1).square().mean()
    assert penalty.item() == pytest.approx(expected.item(), rel=1e-5)
    (grad_penalty,) = torch.autograd.grad(penalty, a)
    (grad_expected,) = torch.autograd.grad(expected, a)
    assert grad_penalty.item() == pytest.approx(grad_expected.item(), rel=1e-5)


# A critic whose input gradients pass through fp16 at a size fp16 cannot hold: its fp16 layer sees
# the upstream gradient times 2^-28 (under fp16's smallest subnormal, 2^-24), and an fp32 input
# layer multiplies it back by 2^28. So its true input gradient is w (about 1), which fp16 keeps
# only when the loss is scaled first: at scale 1 it underflows to 0, at GradScaler's initial
# 65536 it survives, and dividing the scale back out gives the fp32 answer.
_GAIN = 2.0**28


def _fp16_critic(w16: torch.Tensor):
    def critic(x):
        return ((x * _GAIN).half() * w16).flatten(1).sum(1).float() / _GAIN

    return critic


def _fp32_critic(w16: torch.Tensor):
    def critic(x):
        return (x * _GAIN * w16.float()).flatten(1).sum(1) / _GAIN

    return critic


def test_penalties_need_the_fp16_gradient_scale_to_match_fp32():
    g = torch.Generator().manual_seed(0)
    w16 = (0.5 + torch.rand(1, 3, 2, 2, generator=g)).half()  # normal fp16 values, ||w|| > 1
    real = torch.randn(4, 3, 2, 2, generator=g) / _GAIN  # the fp16 layer sees values ~1
    fake = torch.randn(4, 3, 2, 2, generator=g) / _GAIN
    w = w16.float()

    def gp(critic, scale):
        return losses.gradient_penalty(
            critic, real, fake, grad_scale=scale, generator=torch.Generator().manual_seed(1)
        ).item()

    def r1(critic, scale):
        x = real.clone().requires_grad_(True)
        return losses.r1_penalty(critic(x), x, grad_scale=scale).item()

    # fp32: the gradient is w for every sample, so GP = (||w|| - 1)^2 and R1 = ||w||^2.
    assert gp(_fp32_critic(w16), 1.0) == pytest.approx((w.norm().item() - 1) ** 2, rel=1e-5)
    assert r1(_fp32_critic(w16), 1.0) == pytest.approx(w.square().sum().item(), rel=1e-5)
    critic = _fp16_critic(w16)
    # Unscaled, fp16 flushes the gradient to zero: GP = (0 - 1)^2, R1 = 0.
    assert gp(critic, 1.0) == 1.0 and r1(critic, 1.0) == 0.0
    # Scaled by GradScaler's initial scale and unscaled again: the fp32 values.
    assert gp(critic, 65536.0) == pytest.approx(gp(_fp32_critic(w16), 1.0), rel=1e-3)
    assert r1(critic, 65536.0) == pytest.approx(r1(_fp32_critic(w16), 1.0), rel=1e-3)


def test_r1_penalty_is_mean_squared_gradient_norm():
    def critic(x):
        return 0.5 * x.flatten(1).square().sum(1)  # gradient = x

    real = torch.randn(6, 3, 2, 2, requires_grad=True)
    expected = real.detach().flatten(1).square().sum(1).mean()
    penalty = losses.r1_penalty(critic(real), real)
    assert penalty.item() == pytest.approx(expected.item(), rel=1e-5)
    penalty.backward()  # the graph is kept: R1 trains D
    assert real.grad is not None
