"""Data-parallel training: each step all-reduces the gradients of the parameters it updates.

Lightning's ``DDPStrategy`` wraps the whole LightningModule in one ``DistributedDataParallel``:
G, D and every resolution's blocks share its buckets, and each of a step's two
``manual_backward`` calls all-reduced all of them, with ``find_unused_parameters`` (the network
the step does not update, and the blocks not grown yet, sent as zeros). Here instead:

- :class:`StepGradientsDDPStrategy` (``trainer=ddp``) is Lightning's DDP (processes, process
  group, ranks, ``sync_batchnorm``) without the wrapper: rank 0's weights and buffers are
  broadcast once at setup, as DDP's constructor does, and no hook runs at backward.
- :func:`average_gradients`, which the module calls between each ``manual_backward`` and its
  optimizer step, sums over the ranks, in one flattened all-reduce, the gradients of that
  optimizer's parameters that the backward reached: the D step sends D's blocks up to the
  current resolution (and the fading-out ``fromRGB`` while alpha < 1), the G step G's. D's
  backward inside the G step computes no D gradient (``toggle_optimizer`` froze D), and G's
  forward in the D step runs under ``no_grad``: neither sends anything.

Every rank builds the same graph (same resolution, alpha and code path), so every rank reduces
the same parameters in the same order. Under fp16 the reduced gradients are still scaled: the
scaler's scale is the same on every rank, and a non-finite gradient on one rank makes the sum
non-finite on all, so every rank's scaler skips the same steps, as under DDP. Buffers are kept
equal without broadcasts: ``w_avg`` is averaged over the ranks each step (the module), ADA's
``p`` moves by all-reduced statistics (:mod:`stylegan.augment`), the EMA follows equal weights,
and BatchNorm (the DCGAN discriminator) is synchronised by ``sync_batchnorm``.
"""

from collections import defaultdict
from collections.abc import Iterable

import torch
import torch.distributed as dist
from lightning.pytorch.strategies import DDPStrategy
from torch import nn


def world_size() -> int:
    """The number of processes training together (1 without a process group)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size()
    return 1


@torch.no_grad()
def average_gradients(parameters: Iterable[nn.Parameter]) -> None:
    """Replace each gradient of ``parameters`` by its mean over the ranks, in one all-reduce per
    dtype. Parameters without a gradient (not reached by the backward) are skipped; a no-op in
    a single process. Collective: call it on every rank with the same parameters."""
    world = world_size()
    if world == 1:
        return
    by_dtype: dict[torch.dtype, list[torch.Tensor]] = defaultdict(list)
    for parameter in parameters:
        if parameter.grad is not None:
            by_dtype[parameter.grad.dtype].append(parameter.grad)
    for grads in by_dtype.values():
        flat = torch.cat([grad.reshape(-1) for grad in grads])
        dist.all_reduce(flat)  # SUM: gloo has no AVG
        flat /= world
        for grad, mean in zip(grads, flat.split([grad.numel() for grad in grads]), strict=True):
            grad.copy_(mean.view(grad.shape))


class StepGradientsDDPStrategy(DDPStrategy):
    """Lightning's DDP without ``DistributedDataParallel``: the module averages the gradients of
    the parameters each step updates (:func:`average_gradients`)."""

    def configure_ddp(self) -> None:
        # What DDP's constructor does for consistency: every rank starts from rank 0's state.
        with torch.no_grad():
            for tensor in [*self.model.parameters(), *self.model.buffers()]:
                dist.broadcast(tensor, src=0)
