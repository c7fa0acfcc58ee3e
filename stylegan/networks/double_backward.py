"""A conv2d whose gradient is differentiated again by the convolution's own backward kernels.

Owns: :func:`conv2d`, used by the discriminator. The gradient penalties (WGAN-GP, R1) take
D's gradient with ``create_graph=True`` and then differentiate it, so every conv in D runs a
double backward. Aten's generic double backward computes the weight term by convolving the
batch-transposed input with the batch-transposed gradient ([C, N, H, W] copies, then a conv
with the batch as channels); on a CPU that runs at ~180 GFLOP/s against ~500 for oneDNN's
own weight-gradient kernel, and for the depthwise blur it loops over every channel. It was
~13 % of a paper-width 32 px fp32 step (README Performance).

Here the first backward is built from two autograd Functions whose backward passes are again
``aten.convolution_backward`` and a forward conv, using the identities (y = conv(x, w)):

- grad_x = J_x^T g, and <gg, J_x^T g> = <conv(gg, w), g>: d/dg = conv(gg, w), d/dw = the
  weight gradient of conv with input gg and output gradient g;
- grad_w = J_w^T g, and <gg, J_w^T g> = <conv(x, gg), g>: d/dg = conv(x, gg), d/dx = the
  input gradient of conv with weight gg and output gradient g.

Only the gradients the running backward will use are computed (the penalty's
``autograd.grad(..., inputs=x)`` does not need D's weight gradients). Stride 1, dilation 1,
square padding: the convolutions StyleGAN's discriminator has. Third derivatives raise.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.autograd.function import FunctionCtx, once_differentiable

__all__ = ["conv2d"]


def conv2d(
    x: Tensor, weight: Tensor, bias: Tensor | None = None, padding: int = 0, groups: int = 1
) -> Tensor:
    """``F.conv2d(x, weight, bias, 1, padding, 1, groups)`` with the cheaper double backward.

    Outside autograd (no grad, nothing requiring it, or inside torch.compile's tracing) it is
    ``F.conv2d`` itself. Under autocast the inputs are cast as autocast would cast them."""
    if (
        not torch.is_grad_enabled()
        or torch.compiler.is_compiling()
        or not (x.requires_grad or weight.requires_grad)
    ):
        return F.conv2d(x, weight, bias, 1, padding, 1, groups)
    device_type = x.device.type
    if torch.is_autocast_enabled(device_type):
        dtype = torch.get_autocast_dtype(device_type)
        x, weight = x.to(dtype), weight.to(dtype)
        bias = None if bias is None else bias.to(dtype)
        with torch.autocast(device_type, enabled=False):
            return _Conv2d.apply(x, weight, bias, padding, groups)
    return _Conv2d.apply(x, weight, bias, padding, groups)


def _convolution_backward(
    grad_out: Tensor, x: Tensor, weight: Tensor, padding: int, groups: int, mask: list[bool]
) -> tuple[Tensor, Tensor, Tensor]:
    return torch.ops.aten.convolution_backward.default(
        grad_out, x, weight, None, [1, 1], [padding, padding], [1, 1], False, [0, 0], groups, mask
    )


def _needed(ctx: FunctionCtx, count: int) -> list[bool]:
    """Which of the first ``count`` inputs' gradients the running backward will use.

    ``needs_input_grad`` says what requires grad; the engine knows what this backward call
    feeds (``autograd.grad(y, x)`` does not feed the weights). A leaf under ``autograd.grad``
    can't be asked; it counts as needed."""
    needed = list(ctx.needs_input_grad[:count])
    for i, (node, _) in enumerate(ctx.next_functions[:count]):
        if needed[i] and node is not None:
            try:
                needed[i] = torch._C._will_engine_execute_node(node)
            except (RuntimeError, AttributeError):
                needed[i] = True
    return needed


class _Conv2d(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, padding, groups):
        ctx.save_for_backward(x, weight)
        ctx.padding, ctx.groups = padding, groups
        return F.conv2d(x, weight, bias, 1, padding, 1, groups)

    @staticmethod
    def backward(ctx, grad_out):
        x, weight = ctx.saved_tensors
        need_x, need_w, need_b = _needed(ctx, 3)
        args = (ctx.padding, ctx.groups)
        with torch.autocast(grad_out.device.type, enabled=False):
            gx = _InputGrad.apply(grad_out, x.detach(), weight, *args) if need_x else None
            gw = _WeightGrad.apply(grad_out, x, weight.detach(), *args) if need_w else None
            gb = grad_out.sum((0, 2, 3)) if need_b else None
        return gx, gw, gb, None, None


class _InputGrad(torch.autograd.Function):
    """grad_x of conv(x, w) for output gradient g; differentiable in g and w."""

    @staticmethod
    def forward(ctx, grad_out, x_like, weight, padding, groups):
        ctx.save_for_backward(grad_out, weight)
        ctx.padding, ctx.groups = padding, groups
        return _convolution_backward(
            grad_out, x_like, weight, padding, groups, [True, False, False]
        )[0]

    @staticmethod
    @once_differentiable
    def backward(ctx, gg):
        grad_out, weight = ctx.saved_tensors
        need_g, _, need_w = _needed(ctx, 3)
        with torch.autocast(gg.device.type, enabled=False):
            d_grad_out = (
                F.conv2d(gg, weight, None, 1, ctx.padding, 1, ctx.groups) if need_g else None
            )
            d_weight = None
            if need_w:
                mask = [False, True, False]
                d_weight = _convolution_backward(
                    grad_out, gg, weight, ctx.padding, ctx.groups, mask
                )[1]
        return d_grad_out, None, d_weight, None, None


class _WeightGrad(torch.autograd.Function):
    """grad_w of conv(x, w) for output gradient g; differentiable in g and x."""

    @staticmethod
    def forward(ctx, grad_out, x, weight_like, padding, groups):
        ctx.save_for_backward(grad_out, x)
        ctx.padding, ctx.groups = padding, groups
        return _convolution_backward(
            grad_out, x, weight_like, padding, groups, [False, True, False]
        )[1]

    @staticmethod
    @once_differentiable
    def backward(ctx, gg):
        grad_out, x = ctx.saved_tensors
        need_g, need_x = _needed(ctx, 2)
        gg = gg.to(grad_out.dtype)
        with torch.autocast(gg.device.type, enabled=False):
            d_grad_out = F.conv2d(x, gg, None, 1, ctx.padding, 1, ctx.groups) if need_g else None
            d_x = None
            if need_x:
                mask = [True, False, False]
                d_x = _convolution_backward(grad_out, x, gg, ctx.padding, ctx.groups, mask)[0]
        return d_grad_out, d_x, None, None, None
