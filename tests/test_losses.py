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


def test_penalties_do_not_depend_on_the_fp16_gradient_scale():
    w = torch.randn(1, 3, 4, 4)

    def critic(x):
        return (x.square() * w).flatten(1).sum(1)

    real, fake = torch.randn(3, 3, 4, 4), torch.randn(3, 3, 4, 4)
    gp = [
        losses.gradient_penalty(
            critic, real, fake, grad_scale=s, generator=torch.Generator().manual_seed(1)
        )
        for s in (1.0, 1024.0)
    ]
    assert gp[0].item() == pytest.approx(gp[1].item(), rel=1e-5)
    real.requires_grad_(True)
    r1 = [losses.r1_penalty(critic(real), real, grad_scale=s) for s in (1.0, 65536.0)]
    assert r1[0].item() == pytest.approx(r1[1].item(), rel=1e-5)


def test_r1_penalty_is_mean_squared_gradient_norm():
    def critic(x):
        return 0.5 * x.flatten(1).square().sum(1)  # gradient = x

    real = torch.randn(6, 3, 2, 2, requires_grad=True)
    expected = real.detach().flatten(1).square().sum(1).mean()
    penalty = losses.r1_penalty(critic(real), real)
    assert penalty.item() == pytest.approx(expected.item(), rel=1e-5)
    penalty.backward()  # the graph is kept: R1 trains D
    assert real.grad is not None
