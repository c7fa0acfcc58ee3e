"""The CPU training precision: bf16 mixed precision where the CPU computes bf16 natively.

``conf/trainer/cpu.yaml`` sets ``precision: ${best_cpu_precision:}``; the resolver registered
here answers ``bf16-mixed`` on CPUs with native bf16 (AVX512-BF16 or AMX, which oneDNN reports),
where a bf16 convolution runs about twice as fast as fp32, and ``32-true`` elsewhere, saying so in
one line. Any explicit ``trainer.precision=...`` overrides it.
"""

import logging

import torch
from omegaconf import OmegaConf

log = logging.getLogger(__name__)
RESOLVER = "best_cpu_precision"
# The resolver runs each time the config is resolved (the trainer, the logged hyperparameters):
# the fallback is announced on the first of them only.
_fallback_announced = False


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bf16 natively (AVX512-BF16 / AMX on x86), not emulated.

    oneDNN's own ``_is_mkldnn_bf16_supported`` answers yes on any AVX512 CPU, where bf16 is
    emulated: on an Ice Lake Xeon without AVX512-BF16 a bf16-mixed 64-px step took 2.1x as long as
    fp32 (benchmarks/bench_train.py, 2026-12-07). So on x86 ask for the instructions themselves.
    """
    if not torch.backends.mkldnn.is_available():
        return False
    cpu = torch.cpu
    if hasattr(cpu, "_is_avx512_bf16_supported") and cpu._is_avx2_supported():  # x86
        return bool(cpu._is_avx512_bf16_supported() or cpu._is_amx_tile_supported())
    try:  # elsewhere (aarch64) oneDNN's answer reflects the bf16 instructions
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # an older or differently built torch
        return False


def best_cpu_precision() -> str:
    """``bf16-mixed`` where the CPU has native bf16, else ``32-true`` (said once per process)."""
    global _fallback_announced
    if cpu_has_native_bf16():
        return "bf16-mixed"
    if not _fallback_announced:
        log.warning("trainer=cpu: this CPU has no native bf16, so training runs in fp32 (32-true)")
        _fallback_announced = True
    return "32-true"


def register_resolvers() -> None:
    """Make ``${best_cpu_precision:}`` available to the configs (idempotent)."""
    if not OmegaConf.has_resolver(RESOLVER):
        OmegaConf.register_new_resolver(RESOLVER, best_cpu_precision)
