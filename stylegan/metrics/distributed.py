"""The metrics' DDP helpers: who computes what, and how results reach every rank.

Every metric entry point is collective under DDP (call it on every rank). Work on real images runs
on rank 0 and its result (or its exception) is broadcast (:func:`computed_on_rank0`); generated
images are split across ranks (:func:`rank_share`) and their features all-gathered
(:func:`gathered`). Without an initialized process group each helper is the single-process
identity.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor


def dist_info() -> tuple[int, int]:
    """``(world_size, rank)``; ``(1, 0)`` without an initialized process group."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_world_size(), torch.distributed.get_rank()
    return 1, 0


def rank_share(num_images: int) -> int:
    """This rank's part of ``num_images`` (the first ``num_images % world`` ranks take one more)."""
    world, rank = dist_info()
    return num_images // world + (1 if rank < num_images % world else 0)


def _broadcast_from_rank0(obj, device: torch.device):
    holder = [obj]
    kwargs = {"device": device} if device.type == "cuda" else {}
    torch.distributed.broadcast_object_list(holder, src=0, **kwargs)
    return holder[0]


def computed_on_rank0(compute: Callable[[], object], device: str | torch.device) -> object:
    """``compute()`` on rank 0 only, its result (or its exception) broadcast to every rank.
    Without DDP, just ``compute()``. Collective: call it on every rank."""
    world, rank = dist_info()
    if world == 1:
        return compute()
    result: object = None
    if rank == 0:
        try:
            result = compute()
        except Exception as exc:
            result = exc
    result = _broadcast_from_rank0(result, torch.device(device))
    if isinstance(result, BaseException):
        raise result
    return result


def gathered(rows: Tensor) -> Tensor:
    """Every rank's ``rows [n_r, D]`` concatenated in rank order, on every rank (collective)."""
    world, _ = dist_info()
    if world == 1:
        return rows
    from torchmetrics.utilities.distributed import gather_all_tensors

    return torch.cat(gather_all_tensors(rows))
