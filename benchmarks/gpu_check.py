"""The GPU check: what this project promises on a CUDA GPU, in one table (about 5 minutes on an
H200 up to its fid row; the whole table has not yet been timed end to end).

    python benchmarks/gpu_check.py                       # one CUDA GPU (the first visible one)
    python benchmarks/gpu_check.py --data-root /data/celeba
    python benchmarks/gpu_check.py --cpu                 # the CPU fallback (also without a GPU)

Rows (each composes the real ``conf/train.yaml`` and runs ``train.train`` or ``fid.evaluate_fid``,
as the command line does):

- ``step``: the training step's img/s at 64, 128 and 256 px at paper widths (batch 32/16/8), for
  ``32-true``, ``bf16-mixed`` and ``16-mixed``, timed between ``torch.cuda.synchronize`` calls
  after warm-up, with the share of this GPU's dense matmul peak measured in the same run (TF32
  for ``32-true``, whose convs cuDNN runs in TF32; bf16 for the mixed precisions); FLOPs are
  counted as ``bench_train.py`` counts them (torch's flop registry over every dispatched op, the
  penalties' double backward included);
- ``smoke``: 200 steps of ``experiment=smoke`` on ``trainer=gpu`` and on ``trainer=ddp`` with one
  device (NCCL): every weight of ``last.ckpt`` finite;
- ``fid``: the FID of 2,000 EMA images of that run (``noise=const``) on CUDA and on the CPU,
  equal within 1e-3 relative;
- ``compile``: ``training.compile=true`` over two resolutions (8 -> 16 px): graphs per network
  (2 per resolution, ``stylegan.module.GRAPHS_PER_RESOLUTION``);
- ``syncs``: host syncs in 20 training steps that do not log, which must be 0: reads of tensors
  back to the host (``Tensor.item`` and friends, as ``tests/test_host_syncs.py`` counts them) and,
  on CUDA, ``torch.cuda.set_sync_debug_mode("warn")`` warnings.

Without a GPU (or with ``--cpu``) it says so and runs the CPU fallback in under 2 minutes, without
loader workers: one step row at 16 px and tiny widths, a 10-step smoke run, compile with the eager
backend, and the sync count; ``fid`` and the DDP row need CUDA. Exits 1 if an invariant fails.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
import time
import warnings
from collections import Counter
from pathlib import Path

import _quiet  # noqa: F401  (first: it must run before tqdm and Lightning are imported)
import lightning as L
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench_train import FlopCount  # noqa: E402

import train as train_module  # noqa: E402
from stylegan.checkpoints import safe_torch_load  # noqa: E402

READS = ("item", "tolist", "__bool__", "__float__", "__int__")
PAPER_BATCH = {64: 32, 128: 16, 256: 8}


class Table:
    def __init__(self) -> None:
        self.rows: list[tuple[str, str, str, str]] = []

    def add(self, check: str, setting: str, result: str, ok: bool | None = None) -> None:
        verdict = "" if ok is None else ("ok" if ok else "FAIL")
        self.rows.append((check, setting, result, verdict))
        print(f"  {check}: {setting}: {result} {verdict}", flush=True)

    def print(self) -> None:
        rows = [("check", "setting", "result", ""), *self.rows]
        widths = [max(len(r[i]) for r in rows) for i in range(4)]
        line = "  ".join(f"{{:<{w}}}" for w in widths)
        print("\n" + line.format("check", "setting", "result", ""))
        for row in self.rows:
            print(line.format(*row))

    @property
    def failed(self) -> bool:
        return any(r[3] == "FAIL" for r in self.rows)


# ---------------------------------------------------------------------------- running train.py
def compose(overrides: list[str]):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return hydra_compose(config_name="train", overrides=overrides)


def base(args, run: str) -> list[str]:
    return [
        "logger=none",
        "callbacks.progress_bar=null",
        "callbacks.fid=null",
        "callbacks.samples=null",
        "trainer.enable_progress_bar=false",
        "trainer.enable_model_summary=false",
        f"data.root={args.data_root}",
        # The CPU fallback: no loader worker processes (each resolution restarts them).
        f"data.num_workers={2 if args.device == 'cuda' else 0}",
        f"paths.output_dir={args.work / run}",
        f"paths.cache_dir={args.work / 'cache'}",
        f"paths.root_dir={ROOT}",
    ]


@contextlib.contextmanager
def extra_callbacks(*callbacks: L.Callback):
    """``train.train`` with ``callbacks`` appended to the ones it builds."""
    real = train_module.build_callbacks
    train_module.build_callbacks = lambda *a, **k: [*real(*a, **k), *callbacks]
    try:
        yield
    finally:
        train_module.build_callbacks = real


def finite(ckpt: Path) -> bool:
    state = safe_torch_load(ckpt)["state_dict"]
    return all(bool(t.isfinite().all()) for t in state.values() if t.is_floating_point())


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


# ---------------------------------------------------------------------------- step img/s
class StepClock(L.Callback):
    """``warmup`` steps, then ``steps`` timed as one window between syncs, then one step whose
    FLOPs are counted; then training stops."""

    def __init__(self, device: str, warmup: int = 3, steps: int = 6) -> None:
        self.device, self.warmup, self.steps = device, warmup, steps
        self.index, self.seconds, self.flops, self.images = 0, 0.0, 0, 0
        self._mode = None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if self.index == self.warmup:
            sync(self.device)
            self._start = time.perf_counter()
        elif self.index == self.warmup + self.steps:
            sync(self.device)
            self.seconds = time.perf_counter() - self._start
            self._mode = FlopCount()
            self._mode.__enter__()
        if self.warmup <= self.index < self.warmup + self.steps:
            self.images += batch.shape[0]

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self._mode is not None:
            self._mode.__exit__(None, None, None)
            self.flops = self._mode.total / batch.shape[0]  # per image
            self._mode = None
            trainer.should_stop = True
        self.index += 1


def matmul_peak(dtype: torch.dtype, device: str, *, tf32: bool = False) -> float:
    """FLOP/s of a dense 8192^2 (CPU: 1024^2) matmul; fp32 with TF32 off unless ``tf32``."""
    n = 8192 if device == "cuda" else 1024
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    allowed = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = tf32
    try:
        for _ in range(3):
            a @ b
        sync(device)
        start, repeats = time.perf_counter(), 10
        for _ in range(repeats):
            a @ b
        sync(device)
        return 2 * n**3 * repeats / (time.perf_counter() - start)
    finally:
        torch.backends.cuda.matmul.allow_tf32 = allowed


def step_rows(args, table: Table, device: str) -> None:
    fp32, bf16 = matmul_peak(torch.float32, device), matmul_peak(torch.bfloat16, device)
    # 32-true training convs run in TF32 on CUDA (cuDNN's default, kept on purpose): their
    # reference is the TF32 peak; on the H200 they reached 3x the plain fp32 one.
    peaks = f"fp32 {fp32 / 1e9:.0f} GFLOP/s, bf16 {bf16 / 1e9:.0f}"
    fp32_name, fp32_ref = "fp32", fp32
    if device == "cuda":
        fp32_name, fp32_ref = "tf32", matmul_peak(torch.float32, device, tf32=True)
        peaks += f", tf32 {fp32_ref / 1e9:.0f}"
    table.add("peak", "dense matmul", peaks)
    if device == "cuda":
        rows = [(r, p) for r in (64, 128, 256) for p in ("32-true", "bf16-mixed", "16-mixed")]
        widths, trainer = "model=paper", "trainer=gpu"
    else:
        rows, widths, trainer = [(16, "32-true")], "model=cpu", "trainer=cpu"
    for resolution, precision in rows:
        batch = PAPER_BATCH.get(resolution, 32)
        clock = StepClock(device) if device == "cuda" else StepClock(device, warmup=1, steps=3)
        cfg = compose(
            [
                widths,
                f"stage={resolution}px",
                f"stage.start_resolution={resolution}",
                f"++stage.batch_size.{resolution}={batch}",
                "stage.total_kimg=100000",
                trainer,
                f"trainer.precision={precision}",
                "callbacks.checkpoint=null",
                "callbacks.export=null",
                f"data.limit={512 if device == 'cuda' else 64}",
                *base(args, f"step{resolution}{precision}"),
            ]
        )
        with extra_callbacks(clock):
            train_module.train(cfg)
        rate = clock.images / clock.seconds
        achieved = rate * clock.flops
        table.add(
            "step",
            f"{resolution}px {precision} batch {batch}",
            f"{rate:.1f} img/s, {clock.flops / 1e9:.1f} GFLOP/img, "
            + (
                f"{100 * achieved / fp32_ref:.0f}% of the {fp32_name} peak"
                if precision == "32-true"
                else f"{100 * achieved / bf16:.0f}% of the bf16 peak"
            ),
        )


# ---------------------------------------------------------------------------- smoke, FID
def smoke_rows(args, table: Table, device: str) -> Path | None:
    steps = 200 if device == "cuda" else 10
    trainers = ["trainer=gpu", "trainer=ddp"] if device == "cuda" else ["trainer=cpu"]
    exported = None
    for trainer in trainers:
        run = trainer.split("=")[1]
        extra = ["trainer.devices=1"]  # Lightning's backend on CUDA: NCCL
        cfg = compose(
            [
                "experiment=smoke",
                trainer,
                *(extra if run == "ddp" else []),
                f"stage.total_kimg={steps * 16 / 1000}",
                *base(args, f"smoke-{run}"),
            ]
        )
        start = time.perf_counter()
        train_module.train(cfg)
        last = args.work / f"smoke-{run}" / "checkpoints" / "last.ckpt"
        ok = last.is_file() and finite(last)
        images = safe_torch_load(last)["stylegan"]["progress"]["images_seen"] if ok else 0
        table.add(
            "smoke",
            f"{steps} steps, {trainer}",
            f"{images} images in {time.perf_counter() - start:.0f} s, weights finite: {ok}",
            ok and images == steps * 16,
        )
        exported = exported or args.work / f"smoke-{run}" / "generator.pt"
    return exported


def fid_row(args, table: Table, generator: Path) -> None:
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    from fid import evaluate_fid
    from stylegan.metrics import FeatureNetworkUnavailable

    values = {}
    for device in ("cuda", "cpu"):
        with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
            cfg = hydra_compose(
                config_name="fid",
                overrides=[
                    f"ckpt={generator}",
                    f"data.root={args.data_root}",
                    "num_images=2000",
                    "metrics=fid",
                    # Fixed noise maps: the per-pixel noise is drawn from each device's own RNG,
                    # which would compare two different samples, not two devices.
                    "noise=const",
                    f"device={device}",
                    f"paths.cache_dir={args.work / ('fid-' + device)}",  # no shared statistics
                    f"paths.root_dir={ROOT}",
                ],
            )
        try:
            values[device] = evaluate_fid(cfg)["fid"]
        except FeatureNetworkUnavailable as exc:  # the rest of the table still counts
            table.add("fid", "2000 images, CUDA vs CPU", str(exc), False)
            return
    relative = abs(values["cuda"] - values["cpu"]) / abs(values["cpu"])
    table.add(
        "fid",
        "2000 images, CUDA vs CPU",
        f"{values['cuda']:.4f} vs {values['cpu']:.4f} (relative {relative:.1e})",
        relative <= 1e-3,
    )


# ---------------------------------------------------------------------------- compile, syncs
def compile_row(args, table: Table, device: str) -> None:
    import stylegan.module as module_mod

    graphs: Counter = Counter()
    real_compile = torch.compile

    def counted(fn, **kwargs):
        name = type(fn.__self__).__name__

        def backend(gm, example_inputs):
            graphs[name] += 1
            if device != "cuda":
                return gm.forward  # eager: inductor on a CPU needs minutes and a C++ compiler
            from torch._inductor.compile_fx import compile_fx

            return compile_fx(gm, example_inputs)

        return real_compile(fn, backend=backend, **kwargs)

    torch._dynamo.reset()
    module_mod.torch.compile = counted
    trainer = "trainer=gpu" if device == "cuda" else "trainer=cpu"
    try:
        start = time.perf_counter()
        train_module.train(
            compose(
                [
                    "experiment=smoke",
                    trainer,
                    "trainer.precision=32-true",
                    "training.compile=true",
                    "stage=16px",
                    "stage.fade_kimg=0.032",
                    "stage.stable_kimg=0.032",
                    "stage.total_kimg=0.112",
                    *base(args, "compile"),
                ]
            )
        )
    finally:
        module_mod.torch.compile = real_compile
    expected = 2 * module_mod.GRAPHS_PER_RESOLUTION
    table.add(
        "compile",
        "8 -> 16 px" + ("" if device == "cuda" else " (eager backend)"),
        f"graphs {dict(graphs)} in {time.perf_counter() - start:.0f} s "
        f"({module_mod.GRAPHS_PER_RESOLUTION} per network per resolution expected)",
        dict(graphs) == {"SynthesisNetwork": expected, "Discriminator": expected},
    )


class SyncWindow(L.Callback):
    """Counts host reads and (CUDA) sync-debug warnings from batch 2 to batch 22."""

    def __init__(self) -> None:
        self.reads: Counter = Counter()
        self.warnings = 0
        self.counting = False
        self._caught = None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if batch_idx == 2:
            self.counting = True
            if torch.cuda.is_available() and batch.is_cuda:
                self._caught = warnings.catch_warnings(record=True)
                self._log = self._caught.__enter__()
                warnings.simplefilter("always")
                torch.cuda.set_sync_debug_mode("warn")
        elif batch_idx == 22:
            self.counting = False
            if self._caught is not None:
                torch.cuda.set_sync_debug_mode("default")
                self.warnings = sum("synchroniz" in str(w.message) for w in self._log)
                self._caught.__exit__(None, None, None)
                self._caught = None


def count_syncs(args, device: str, precision: str) -> SyncWindow:
    """Train 22+ steps with every host read counted from batch 2 to batch 22."""
    from torch.optim.optimizer import _get_value

    import stylegan.module

    host_side = {stylegan.module.host_random.__code__, _get_value.__code__}
    window = SyncWindow()
    originals = {name: getattr(torch.Tensor, name) for name in READS}
    real_sync = torch.cuda.synchronize

    def wrap(name):
        def counted(self, *a, **k):
            if window.counting and sys._getframe(1).f_code not in host_side:
                window.reads[name] += 1
            return originals[name](self, *a, **k)

        return counted

    def counted_sync(*a, **k):
        if window.counting:
            window.reads["cuda.synchronize"] += 1
        return real_sync(*a, **k)

    for name in READS:
        setattr(torch.Tensor, name, wrap(name))
    torch.cuda.synchronize = counted_sync
    try:
        with extra_callbacks(window):
            train_module.train(
                compose(
                    [
                        "experiment=smoke",
                        "trainer=gpu" if device == "cuda" else "trainer=cpu",
                        f"trainer.precision={precision}",
                        "trainer.log_every_n_steps=1000",
                        "stage.total_kimg=0.4",
                        "callbacks.checkpoint.every_kimg=100",
                        *base(args, f"syncs-{precision}"),
                    ]
                )
            )
    finally:
        for name, real in originals.items():
            setattr(torch.Tensor, name, real)
        torch.cuda.synchronize = real_sync
    return window


def sync_rows(args, table: Table, device: str) -> None:
    for precision in ["32-true", "16-mixed"] if device == "cuda" else ["32-true"]:
        window = count_syncs(args, device, precision)
        total = sum(window.reads.values()) + window.warnings
        detail = f"reads {dict(window.reads) or 0}"
        if device == "cuda":
            detail += f", sync-debug warnings {window.warnings}"
        table.add("syncs", f"20 steps, {precision}", f"{total} per 20 steps ({detail})", total == 0)


# ---------------------------------------------------------------------------- main
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cpu", action="store_true", help="the CPU fallback even with a GPU")
    parser.add_argument("--data-root", default=str(ROOT.parent / "shared" / "celeba"))
    parser.add_argument("--work", default=None, help="scratch folder (default: a temporary one)")
    args = parser.parse_args()
    if not (Path(args.data_root) / "img_align_celeba").is_dir():
        sys.exit(f"error: no CelebA at {args.data_root} (pass --data-root)")
    args.work = Path(args.work or tempfile.mkdtemp(prefix="gpu-check-"))
    device = "cuda" if torch.cuda.is_available() and not args.cpu else "cpu"
    args.device = device
    start = time.perf_counter()
    if device == "cuda":
        print(f"GPU: {torch.cuda.get_device_name(0)}, torch {torch.__version__}", flush=True)
    else:
        reason = "--cpu" if args.cpu else "no GPU found (torch.cuda.is_available() is False)"
        print(f"{reason}: the CPU fallback; fid and trainer=ddp need CUDA", flush=True)
    table = Table()
    step_rows(args, table, device)
    generator = smoke_rows(args, table, device)
    if device == "cuda" and generator is not None and generator.is_file():
        fid_row(args, table, generator)
    compile_row(args, table, device)
    sync_rows(args, table, device)
    table.print()
    minutes = (time.perf_counter() - start) / 60
    print(f"\n{device}: {minutes:.1f} min; {'FAILED' if table.failed else 'all invariants hold'}")
    sys.exit(1 if table.failed else 0)


if __name__ == "__main__":
    main()
