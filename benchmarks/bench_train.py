"""The real training step, timed as ``train.py`` builds it, against this machine's conv peaks.

    python benchmarks/bench_train.py                                  # paper + cpu widths
    python benchmarks/bench_train.py --widths paper --resolutions 16 32 --steps 3
    python benchmarks/bench_train.py --precisions 32-true --memory-formats nchw -- loss=bce

Each row composes the real ``conf/train.yaml`` (the overrides after ``--`` are added), builds the
module, data module, optimizers and callbacks with train.py's own functions, and runs
``trainer.fit`` on ``../shared/celeba`` at a fixed resolution. A callback times whole
``training_step`` calls (after warm-up), counts the step's FLOPs once with torch's flop counter,
and optionally profiles one step. The conv3×3 peaks (512 channels, fp32 NCHW and bf16
channels_last) are measured in the same run, so the shares printed are of this machine now.
Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import _quiet  # noqa: F401  (first: it must run before tqdm and Lightning are imported)
import lightning as L
import torch
import torch.nn.functional as F
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import flop_registry

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from stylegan.callbacks import AtomicCheckpointIO  # noqa: E402
from train import build_callbacks, build_module, build_schedule, run_knobs  # noqa: E402

BATCH = {8: 32, 16: 32, 32: 32, 64: 16, 128: 8}  # the table: batch per resolution
WIDTHS = {"paper": "model=paper", "cpu": "model=cpu"}
MEMORY_FORMATS = ("nchw", "channels_last")
FLOPS_SEEN: dict[tuple, float] = {}


def conv_peak(dtype: torch.dtype, channels_last: bool, *, repeats: int = 10) -> float:
    """GFLOP/s of a 512-channel 3×3 convolution (batch 32, 16×16), forward only."""
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    x = torch.randn(32, 512, 16, 16).to(dtype=dtype, memory_format=fmt)
    w = torch.randn(512, 512, 3, 3).to(dtype=dtype, memory_format=fmt)
    flops = 2 * x.shape[0] * 512 * 16 * 16 * 512 * 9
    with torch.inference_mode():
        for _ in range(2):
            F.conv2d(x, w, padding=1)
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            F.conv2d(x, w, padding=1)
            times.append(time.perf_counter() - start)
    return flops / min(times) / 1e9


class FlopCount(TorchDispatchMode):
    """Adds up torch's flop registry over every op dispatched (forward, backward and the double
    backward of the penalties; FlopCounterMode's module tracker refuses ``autograd.grad``)."""

    def __init__(self) -> None:
        super().__init__()
        self.total = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        count = flop_registry.get(func._overloadpacket)
        if count is not None:
            self.total += count(*args, **kwargs, out_val=out)
        return out


class StepTimer(L.Callback):
    """Times ``steps`` batches after ``warmup``, counts the FLOPs of the next ``steps`` (so lazy
    penalties are averaged over the same mix of steps: make ``steps`` a multiple of the
    interval), optionally profiles one more, then stops training."""

    def __init__(self, *, warmup: int, steps: int, profile: bool, count_flops: bool = True) -> None:
        self.warmup, self.steps, self.profile = warmup, steps, profile
        self.flop_steps = steps if count_flops else 0
        self.times: list[float] = []
        self.warmup_times: list[float] = []
        self.flops = 0
        self.table = ""
        self._index = 0
        self._mode = None

    def _role(self) -> str:
        position = self._index - self.warmup
        if position < 0:
            return "warmup"
        if position < self.steps:
            return "timed"
        if position < self.steps + self.flop_steps:
            return "flops"
        return "profile"

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        role = self._role()
        if role == "flops":
            self._mode = FlopCount()
            self._mode.__enter__()
        elif role == "profile":
            self._mode = torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU])
            self._mode.__enter__()
        self._start = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        elapsed = time.perf_counter() - self._start
        role = self._role()
        if role == "warmup":
            self.warmup_times.append(elapsed)  # includes torch.compile's compile time
        elif role == "timed":
            self.times.append(elapsed)
        elif role == "flops":
            self._mode.__exit__(None, None, None)
            self.flops += self._mode.total / self.steps  # mean FLOPs per step
        elif role == "profile":
            self._mode.__exit__(None, None, None)
            self.table = self._mode.key_averages().table(
                sort_by="self_cpu_time_total", row_limit=12
            )
        self._index += 1
        if self._index >= self.warmup + self.steps + self.flop_steps + (1 if self.profile else 0):
            trainer.should_stop = True


def compose_train(overrides: list[str]):
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return compose(config_name="train", overrides=overrides)


def run_row(args, widths: str, resolution: int, precision: str, memory_format: str):
    batch = args.batch or BATCH[resolution]
    overrides = [
        WIDTHS[widths],
        f"stage={resolution}px",
        f"stage.start_resolution={resolution}",
        f"++stage.batch_size.{resolution}={batch}",
        "stage.total_kimg=1000",
        "trainer=cpu",
        f"trainer.precision={precision}",
        "trainer.enable_progress_bar=false",
        "trainer.enable_model_summary=false",
        "logger=none",
        "callbacks.fid=null",
        "callbacks.progress_bar=null",
        f"data.root={args.data_root}",
        "data.num_workers=0",
        f"paths.output_dir={args.output_dir}",
        f"paths.cache_dir={args.cache_dir}",
        *args.overrides,
    ]
    cfg = compose_train(overrides)
    if "channels_last" in cfg.training:
        cfg.training.channels_last = memory_format == "channels_last"
    elif memory_format != "nchw":
        return None  # this version of the project has no channels_last knob
    L.seed_everything(0, workers=True)
    knobs = run_knobs(cfg)
    schedule = build_schedule(cfg.stage, knobs.lr_multiplier, knobs.max_lr)
    module = build_module(cfg, schedule)
    datamodule = instantiate(cfg.data, resolutions=schedule.resolutions)
    # FLOPs per step depend on the widths, resolution and algorithm, not on precision or layout:
    # counted once per such row and reused (the counting steps are as slow as the timed ones).
    flops_key = (widths, resolution, batch, tuple(args.overrides))
    known_flops = FLOPS_SEEN.get(flops_key)
    timer = StepTimer(
        warmup=args.warmup, steps=args.steps, profile=args.profile, count_flops=known_flops is None
    )
    trainer = instantiate(
        cfg.trainer,
        callbacks=[*build_callbacks(cfg, schedule), timer],
        logger=False,
        plugins=[AtomicCheckpointIO()],
    )
    trainer.fit(module, datamodule=datamodule)
    step = statistics.mean(timer.times)
    if known_flops is None:
        FLOPS_SEEN[flops_key] = timer.flops
    flops = FLOPS_SEEN[flops_key]
    if os.environ.get("BENCH_VERBOSE"):
        warm = " ".join(f"{t * 1000:.0f}" for t in timer.warmup_times)
        timed = " ".join(f"{t * 1000:.0f}" for t in timer.times)
        print(f"  warm-up step ms: {warm}; timed step ms: {timed}", flush=True)
    return batch, step, flops, timer.table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--widths", nargs="+", default=["paper", "cpu"], choices=list(WIDTHS))
    parser.add_argument("--resolutions", nargs="+", type=int, default=[8, 16, 32])
    parser.add_argument("--precisions", nargs="+", default=["32-true", "bf16-mixed"])
    parser.add_argument("--memory-formats", nargs="+", default=list(MEMORY_FORMATS))
    parser.add_argument("--batch", type=int, default=0, help="0 = the per-resolution table")
    parser.add_argument(
        "--steps", type=int, default=4, help="timed steps, averaged (a multiple of lazy intervals)"
    )
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--profile", action="store_true", help="print each row's top ops")
    parser.add_argument("--data-root", default=str(ROOT.parent / "shared" / "celeba"))
    parser.add_argument("--cache-dir", default=str(Path(tempfile.gettempdir()) / "bench-cache"))
    parser.add_argument("overrides", nargs="*", help="Hydra overrides, after --")
    args = parser.parse_args()
    args.output_dir = tempfile.mkdtemp(prefix="bench-train-")

    fp32_peak = conv_peak(torch.float32, channels_last=False)
    bf16_peak = conv_peak(torch.bfloat16, channels_last=True)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(
        f"conv3x3 peak (512 ch): fp32 NCHW {fp32_peak:.0f} GFLOP/s, bf16 channels_last "
        f"{bf16_peak:.0f} GFLOP/s"
    )
    header = (
        f"{'widths':>6} {'res':>4} {'batch':>5} {'precision':>10} {'format':>13} "
        f"{'ms/step':>9} {'img/s':>7} {'GFLOP/img':>9} {'GFLOP/s':>8} {'%fp32pk':>7} "
        f"{'%bf16pk':>7}"
    )
    print(header)
    tables = []
    for widths in args.widths:
        for resolution in args.resolutions:
            for precision in args.precisions:
                for memory_format in args.memory_formats:
                    row = run_row(args, widths, resolution, precision, memory_format)
                    if row is None:
                        continue
                    batch, step, flops, table = row
                    rate = flops / step / 1e9
                    print(
                        f"{widths:>6} {resolution:>4} {batch:>5} {precision:>10} "
                        f"{memory_format:>13} {step * 1000:>9.1f} {batch / step:>7.2f} "
                        f"{flops / batch / 1e9:>9.2f} {rate:>8.1f} "
                        f"{100 * rate / fp32_peak:>6.0f}% {100 * rate / bf16_peak:>6.0f}%",
                        flush=True,
                    )
                    if table:
                        tables.append((widths, resolution, precision, memory_format, table))
    for widths, resolution, precision, memory_format, table in tables:
        print(f"\nTop ops: {widths} widths, {resolution}px, {precision}, {memory_format}")
        print(table)


if __name__ == "__main__":
    main()
