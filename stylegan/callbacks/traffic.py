"""The bytes each training step all-reduces, by phase: a diagnostic for DDP runs.

:class:`AllReduceTraffic` is in no config; ``benchmarks/bench_ddp.py`` and the tests add it with
``+callbacks.traffic._target_=stylegan.callbacks.traffic.AllReduceTraffic``. It counts every
``torch.distributed.all_reduce`` call of its rank, including DDP's gradient buckets when the
strategy wraps the module in ``DistributedDataParallel`` (it routes them through torch's stock
``allreduce_hook``, which reduces them as DDP's own reducer does), and it attributes each call to
the D step (only D's parameters require grad, by ``toggle_optimizer``), the G step (only G's)
or the rest of the step (``w_avg``). Each record also holds the bytes of the gradients the two
optimizers stepped (those their backward reached) and of all of G's and D's parameters.
"""

import json
from pathlib import Path
from typing import Any

import lightning as L
import torch.distributed as dist
from torch import Tensor, nn
from torch.distributed.algorithms.ddp_comm_hooks.default_hooks import allreduce_hook
from torch.nn.parallel import DistributedDataParallel

from stylegan.atomic import atomic_path

PHASES = ("d", "g", "other")


def _bytes(tensors: Any) -> int:
    return sum(t.numel() * t.element_size() for t in tensors)


def gradient_bytes(network: nn.Module) -> int:
    """Bytes of the gradients ``network`` holds (its parameters that a backward reached)."""
    return _bytes(p.grad for p in network.parameters() if p.grad is not None)


class AllReduceTraffic(L.Callback):
    """Per training step: bytes all-reduced in the D step, the G step and otherwise; written to
    ``dirpath/traffic_rank<global rank>.json`` at the end of training (None = kept in memory)."""

    def __init__(self, dirpath: str | None = None) -> None:
        self.dirpath = dirpath
        self.records: list[dict[str, Any]] = []
        self._step = dict.fromkeys(PHASES, 0)
        self._module: Any = None
        self._all_reduce: Any = None

    def _phase(self) -> str:
        d_trains = next(self._module.discriminator.parameters()).requires_grad
        g_trains = next(self._module.generator.parameters()).requires_grad
        if d_trains != g_trains:
            return "d" if d_trains else "g"
        return "other"

    def on_fit_start(self, trainer: L.Trainer, pl_module: Any) -> None:
        self._module = pl_module
        if isinstance(trainer.strategy.model, DistributedDataParallel):
            trainer.strategy.model.register_comm_hook(state=None, hook=allreduce_hook)
        self._all_reduce = original = dist.all_reduce

        def counted(tensor: Tensor, *args: Any, **kwargs: Any) -> Any:
            self._step[self._phase()] += _bytes([tensor])
            return original(tensor, *args, **kwargs)

        dist.all_reduce = counted

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: Any, batch: Any, i: int) -> None:
        self._step = dict.fromkeys(PHASES, 0)

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: Any, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        D, G = pl_module.discriminator, pl_module.generator
        self.records.append(
            {
                "resolution": int(pl_module.resolution),
                "alpha": float(pl_module.alpha),
                "d_steps": int(pl_module.n_critic),
                "all_reduced": dict(self._step),
                "stepped_gradients": {"d": gradient_bytes(D), "g": gradient_bytes(G)},
                "parameters": {"d": _bytes(D.parameters()), "g": _bytes(G.parameters())},
            }
        )

    def teardown(self, trainer: L.Trainer, pl_module: Any, stage: str) -> None:
        if self._all_reduce is not None:
            dist.all_reduce = self._all_reduce
            self._all_reduce = None
        if self.dirpath is not None and self.records:
            path = Path(self.dirpath) / f"traffic_rank{trainer.global_rank}.json"
            with atomic_path(path) as tmp:
                tmp.write_text(json.dumps(self.records))
