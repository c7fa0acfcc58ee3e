"""Bytes all-reduced per D step and per G step under DDP: one DistributedDataParallel over the
whole module (Lightning's ``DDPStrategy`` with ``find_unused_parameters``, what ``trainer=ddp``
was) against ``trainer=ddp`` now (``stylegan.distributed``: the stepped gradients only).

    python benchmarks/bench_ddp.py [--data-root ../shared/celeba] [--resolution 256]

Two CPU processes (gloo) run ``train.py`` at the paper's widths for a run growing to
``--resolution``, 2 steps of 4 images in each phase: 8 px, 16 px fading in, 16 px, with
:class:`~stylegan.callbacks.traffic.AllReduceTraffic` counting every all-reduce of rank 0 (gloo
sends the buckets NCCL would). The figures are byte counts, not timings: a busy machine gives the
same. Asserts that the new traffic equals the gradients the optimizers stepped.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BEFORE = [
    "trainer.strategy._target_=lightning.pytorch.strategies.DDPStrategy",
    "+trainer.strategy.find_unused_parameters=true",
]
MIB = 2**20


def run(overrides: list[str], data_root: str, resolution: int, workdir: Path) -> list[dict]:
    """Rank 0's traffic records of one 2-process run."""
    probe = workdir / "traffic"
    args = [
        f"stage={resolution}px",
        "model=paper",
        "trainer=ddp",
        "trainer.accelerator=cpu",
        "trainer.devices=2",
        "trainer.precision=32-true",
        # Global batch 4 (2 images per rank) at every resolution (the override merges per key).
        "stage.batch_size={" + ", ".join(f"{4 << i}: 4" for i in range(9)) + "}",
        "stage.stable_kimg=0.008",
        "stage.fade_kimg=0.008",
        "stage.total_kimg=0.024",
        "data.limit=64",
        "data.num_workers=0",
        f"data.root={data_root}",
        "logger=none",
        "callbacks.progress_bar=null",
        "callbacks.export=null",
        "callbacks.samples=null",
        "callbacks.checkpoint=null",
        "callbacks.fid=null",
        "trainer.enable_progress_bar=false",
        "trainer.enable_model_summary=false",
        "+callbacks.traffic._target_=stylegan.callbacks.traffic.AllReduceTraffic",
        f"+callbacks.traffic.dirpath={probe}",
        f"paths.cache_dir={workdir.parent / 'cache'}",
        f"hydra.run.dir={workdir}",
        *overrides,
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, "train.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
    )
    if result.returncode != 0:
        which = " ".join(overrides) or "trainer=ddp"
        sys.exit(f"train.py failed ({which}):\n{result.stderr[-3000:]}")
    return json.loads((probe / "traffic_rank0.json").read_text())


def per_phase(records: list[dict]) -> dict[str, dict]:
    """The first record of each phase ("8 px", "16 px fading", "16 px")."""
    phases: dict[str, dict] = {}
    for record in records:
        name = f"{record['resolution']} px" + (" fading" if record["alpha"] < 1.0 else "")
        phases.setdefault(name, record)
    return phases


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", default=str(ROOT.parent / "shared" / "celeba"))
    parser.add_argument("--resolution", type=int, default=256, help="the run's final resolution")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        before = per_phase(run(BEFORE, args.data_root, args.resolution, Path(tmp) / "before"))
        after = per_phase(run([], args.data_root, args.resolution, Path(tmp) / "after"))

    first = next(iter(after.values()))
    print(
        f"paper widths, growing to {args.resolution} px: G {first['parameters']['g'] / MIB:.1f} "
        f"MiB, D {first['parameters']['d'] / MIB:.1f} MiB of fp32 parameters"
    )
    print("MiB all-reduced per step, by rank 0 (gloo, 2 processes)")
    print(
        f"{'phase':<14} {'D step before':>14} {'D step after':>13} {'G step before':>14} "
        f"{'G step after':>13} {'w_avg etc.':>11}"
    )
    for phase, new in after.items():
        old = before[phase]
        # The new traffic is exactly the gradients the two optimizers stepped.
        assert new["all_reduced"]["d"] == new["stepped_gradients"]["d"] * new["d_steps"], new
        assert new["all_reduced"]["g"] == new["stepped_gradients"]["g"], new
        d_old, d_new = (r["all_reduced"]["d"] / r["d_steps"] / MIB for r in (old, new))
        g_old, g_new = (r["all_reduced"]["g"] / MIB for r in (old, new))
        print(
            f"{phase:<14} {d_old:>14.2f} {d_new:>13.2f} {g_old:>14.2f} {g_new:>13.2f} "
            f"{new['all_reduced']['other'] / MIB:>11.4f}"
        )


if __name__ == "__main__":
    main()
