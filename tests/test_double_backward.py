"""conv2d with the cheaper double backward: the same first and second derivatives as F.conv2d."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.autograd import gradcheck, gradgradcheck

import stylegan.networks.double_backward as db
from stylegan.networks.double_backward import conv2d


@pytest.mark.parametrize(
    ("cin", "cout", "k", "groups", "bias"),
    [(3, 4, 3, 1, True), (4, 5, 1, 1, False), (4, 4, 3, 4, False)],  # conv, 1x1, depthwise
)
def test_first_and_second_derivatives_pass_gradcheck(cin, cout, k, groups, bias):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, cin, 5, 5, dtype=torch.float64, generator=g, requires_grad=True)
    w = torch.randn(cout, cin // groups, k, k, dtype=torch.float64, generator=g, requires_grad=True)
    b = torch.randn(cout, dtype=torch.float64, generator=g, requires_grad=True) if bias else None
    inputs = (x, w) if b is None else (x, w, b)

    def f(*args):
        return conv2d(args[0], args[1], args[2] if len(args) > 2 else None, k // 2, groups)

    assert gradcheck(f, inputs)
    assert gradgradcheck(f, inputs)


def _penalty_grads(conv, x, w, b, memory_format=torch.contiguous_format):
    """A WGAN-GP-shaped loss: ||d sum(lrelu(conv(x))) / dx||^2, differentiated w.r.t. w, b, x."""
    x = x.detach().contiguous(memory_format=memory_format).requires_grad_(True)
    y = F.leaky_relu(conv(x, w, b, 1, 1), 0.2)
    (gx,) = torch.autograd.grad(y.square().sum(), x, create_graph=True)
    penalty = gx.square().sum()
    return torch.autograd.grad(penalty, [w, b, x])


@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last])
def test_penalty_gradients_equal_f_conv2d(memory_format):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(4, 8, 6, 6, generator=g)
    w = (torch.randn(16, 8, 3, 3, generator=g) * 0.2).requires_grad_(True)
    b = torch.randn(16, generator=g, requires_grad=True)
    expected = _penalty_grads(lambda *a: F.conv2d(a[0], a[1], a[2], 1, a[3]), x, w, b)
    got = _penalty_grads(lambda *a: conv2d(*a), x, w, b, memory_format)
    for e, o in zip(expected, got, strict=True):
        torch.testing.assert_close(o, e, rtol=1e-4, atol=1e-5 * float(e.abs().max()))


def test_gradient_wrt_input_only_skips_the_weight_gradient(monkeypatch):
    calls = []
    real = db._WeightGrad.apply
    monkeypatch.setattr(db._WeightGrad, "apply", lambda *a: calls.append(1) or real(*a))
    x = torch.randn(2, 3, 5, 5).requires_grad_(True)
    w = torch.randn(4, 3, 3, 3).requires_grad_(True) * 0.5  # non-leaf, as D's scaled weight
    torch.autograd.grad(conv2d(x * 1, w, None, 1).sum(), x, create_graph=True)
    assert calls == []  # the penalty's first backward computes no weight gradient
    conv2d(x * 1, w, None, 1).sum().backward()
    assert calls == [1]  # an ordinary backward does


def test_autocast_runs_in_the_autocast_dtype_and_keeps_fp32_gradients():
    x = torch.randn(2, 3, 5, 5, requires_grad=True)
    w = torch.randn(4, 3, 3, 3, requires_grad=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = conv2d(x, w, None, 1)
        expected = F.conv2d(x, w, None, 1, 1)
    assert y.dtype == expected.dtype == torch.bfloat16
    assert torch.equal(y, expected)
    (gx,) = torch.autograd.grad(y.float().square().sum(), x, create_graph=True)
    gx.square().sum().backward()
    assert gx.dtype == torch.float32 and w.grad.dtype == torch.float32
    assert torch.isfinite(w.grad).all() and w.grad.abs().sum() > 0


def test_without_grad_it_is_f_conv2d():
    x, w = torch.randn(2, 3, 5, 5), torch.randn(4, 3, 3, 3)
    with torch.no_grad():
        assert torch.equal(conv2d(x, w, None, 1), F.conv2d(x, w, None, 1, 1))
    assert conv2d(x, w, None, 1).grad_fn is None


@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last])
def test_discriminator_penalty_gradients_equal_the_plain_conv_ones(memory_format):
    import copy

    from stylegan.losses import gradient_penalty
    from stylegan.networks.discriminator import Discriminator

    torch.manual_seed(0)
    d = Discriminator(resolution=16, channel_base=256, channel_max=16)
    plain = copy.deepcopy(d)
    swapped = [m for m in plain.modules() if getattr(m, "conv2d", None) is conv2d]
    assert len(swapped) == 3 + 2 * 3 + 1  # fromRGB at 16, 8, 4; 2 x (conv0, blur, conv1); output
    for module in swapped:
        module.conv2d = F.conv2d
    real = torch.randn(8, 3, 16, 16).contiguous(memory_format=memory_format)
    fake = torch.randn(8, 3, 16, 16).contiguous(memory_format=memory_format)
    grads = []
    for net in (d, plain):
        penalty = gradient_penalty(
            lambda x, net=net: net(x, resolution=16, alpha=0.5),
            real,
            fake,
            generator=torch.Generator().manual_seed(1),
        )
        grads.append(torch.autograd.grad(penalty, list(net.parameters()), allow_unused=True))
    for fast, slow in zip(*grads, strict=True):
        if slow is None:
            assert fast is None or not fast.any()
            continue
        torch.testing.assert_close(
            fast, slow, rtol=1e-4, atol=1e-6 + 1e-5 * float(slow.abs().max())
        )
