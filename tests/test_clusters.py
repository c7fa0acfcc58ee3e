"""Beyond one machine: sweeps through hydra-submitit-launcher (local processes here, SLURM on a
cluster) and multi-node DDP on loopback (two "nodes" as two processes of ``train.py``)."""

import csv
import dataclasses
import os
import socket
import subprocess
import sys

import pytest
import torch
import yaml
from conftest import CONF_DIR, ROOT, run_cli
from hydra import compose, initialize_config_dir

# Two processes of tiny models on two shared cores: one thread each.
_ENV = {
    **os.environ,
    "OMP_NUM_THREADS": "1",
    "PYTHONPATH": os.pathsep.join(
        [str(ROOT), str(ROOT / "tests"), os.environ.get("PYTHONPATH", "")]
    ),
}


def final_fid(run_dir) -> float:
    """The FID a run ended with: the last ``metrics/fid`` in its CSV log (what train() returns)."""
    (path,) = run_dir.glob("csv/version_*/metrics.csv")
    rows = list(csv.DictReader(path.open()))
    return [float(r["metrics/fid"]) for r in rows if r.get("metrics/fid")][-1]


def trial_params(run_dir, names) -> dict:
    """The values a sweep job ran with for the swept ``names`` (from its overrides.yaml)."""
    overrides = yaml.safe_load((run_dir / ".hydra" / "overrides.yaml").read_text())
    values = dict(item.split("=", 1) for item in overrides)
    return {name: yaml.safe_load(values[name]) for name in names}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------------------- launcher configs
def test_slurm_launcher_config_has_every_plugin_field_and_takes_overrides():
    from hydra_plugins.hydra_submitit_launcher.config import SlurmQueueConf

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(
            "train",
            [
                "hydra/launcher=submitit_slurm",
                "hydra.launcher.partition=gpu",
                "hydra.launcher.gpus_per_node=4",
                "hydra.launcher.timeout_min=600",
                "hydra.launcher.mem_gb=128",
            ],
            return_hydra_config=True,
        )
    launcher = cfg.hydra.launcher
    plugin_fields = {f.name for f in dataclasses.fields(SlurmQueueConf)}
    # Our file replaces the plugin's entry: same keys (a typo would reach sbatch as nothing).
    assert set(launcher.keys()) == plugin_fields
    assert launcher._target_ == SlurmQueueConf._target_
    assert (launcher.partition, launcher.gpus_per_node) == ("gpu", 4)
    assert (launcher.timeout_min, launcher.mem_gb) == (600, 128)


# ---------------------------------------------------------------------------- submitit sweeps
@pytest.mark.slow
def test_submitit_local_sweep_runs_each_job_in_its_own_process(tmp_path, celeba_root, smoke_run):
    sweep = tmp_path / "sweep"
    result = run_cli(
        "train.py",
        "-m",
        "hydra/launcher=submitit_local",
        "hydra.launcher.timeout_min=10",
        "loss=wgan_gp,bce",
        "experiment=smoke",
        "logger=none",
        "callbacks.progress_bar=null",
        "stage.total_kimg=0.1",
        f"data.root={celeba_root}",
        f"paths.cache_dir={smoke_run.parent / 'cache'}",
        f"hydra.sweep.dir={sweep}",
        env=_ENV,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    for job, loss in (("0", "wgan_gp"), ("1", "bce")):
        assert (sweep / job / "checkpoints" / "last.ckpt").is_file()
        overrides = yaml.safe_load((sweep / job / ".hydra" / "overrides.yaml").read_text())
        assert f"loss={loss}" in overrides
    # submitit's local executor names each job's folder by the PID of the process it started.
    job_dirs = [p for p in (sweep / ".submitit").iterdir() if p.name.isdigit()]
    pids = {int(p.name) for p in job_dirs}
    assert len(pids) == 2 and os.getpid() not in pids
    for d in job_dirs:
        assert list(d.glob("*_result.pkl")), f"job {d.name} left no result"


@pytest.mark.slow
def test_optuna_sweep_runs_through_the_submitit_launcher(tmp_path, celeba_root, smoke_run):
    """The Optuna sweep (hparams_search=optuna) minimizes the final FID; run through the submitit
    launcher, two trials at once (the in-process launcher: the multirun in test_tracking.py)."""
    sweep = tmp_path / "optuna"
    result = run_cli(
        "train.py",
        "-m",
        "hparams_search=optuna",
        "hydra/launcher=submitit_local",
        "hydra.launcher.timeout_min=10",
        "hydra.sweeper.n_trials=2",
        "hydra.sweeper.n_jobs=2",
        "experiment=smoke",
        "logger=csv",
        "callbacks.progress_bar=null",
        "stage.total_kimg=0.1",
        "callbacks.fid.feature_network=tiny",
        "callbacks.fid.num_images=32",
        "callbacks.fid.batch_size=16",
        f"data.root={celeba_root}",
        f"paths.cache_dir={smoke_run.parent / 'cache'}",
        f"hydra.sweep.dir={sweep}",
        env=_ENV,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    results = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    assert len([p for p in (sweep / ".submitit").iterdir() if p.name.isdigit()]) == 2
    # The study's best is the lower of the two trials' final FIDs, with that trial's parameters.
    fids = {job: final_fid(sweep / job) for job in ("0", "1")}
    assert fids["0"] != fids["1"]
    best_job = min(fids, key=fids.get)
    assert results["best_value"] == pytest.approx(fids[best_job], rel=1e-6)
    assert results["best_params"] == trial_params(sweep / best_job, results["best_params"])
    assert {"training.lr_multiplier", "training.style_mixing_prob"} <= set(results["best_params"])


# ---------------------------------------------------------------------------- multi-node DDP
@pytest.mark.slow
def test_two_nodes_on_loopback_share_the_work_and_end_with_equal_weights(
    tmp_path, celeba_root, smoke_run
):
    """Two "nodes" (one CPU process each, gloo) through train.py, as SLURM's srun would start
    them: disjoint real images, equal weights at the end, outputs from global rank 0 only."""
    port = _free_port()
    probe = tmp_path / "probe"
    procs = []
    for node in (0, 1):
        env = {**_ENV, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "NODE_RANK": str(node)}
        args = [
            sys.executable,
            "train.py",
            "experiment=smoke",
            "trainer=ddp",
            "trainer.accelerator=cpu",
            "trainer.devices=1",
            "trainer.num_nodes=2",
            "stage.total_kimg=0.16",  # 10 steps of 8 images per node: one pass, no repeats
            "logger=none",
            "callbacks.progress_bar=null",
            "+callbacks.probe._target_=probes.RankProbe",
            f"+callbacks.probe.dirpath={probe}",
            f"data.root={celeba_root}",
            f"paths.cache_dir={smoke_run.parent / 'cache'}",
            f"hydra.run.dir={tmp_path / f'node{node}'}",
        ]
        procs.append(
            subprocess.Popen(
                args,
                cwd=ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
        )
    outputs = [p.communicate(timeout=600)[0] for p in procs]
    for p, out in zip(procs, outputs, strict=True):
        assert p.returncode == 0, out[-3000:]

    r0, r1 = (torch.load(probe / f"rank{r}.pt", weights_only=False) for r in (0, 1))
    assert (r0["world_size"], r0["node_rank"], r1["node_rank"]) == (2, 0, 1)
    # The progress counts both nodes' images; each rank saw half of them, and no image twice.
    assert r0["images_seen"] == r1["images_seen"] == 160
    assert len(r0["image_hashes"]) == len(r1["image_hashes"]) == 80
    assert not set(r0["image_hashes"]) & set(r1["image_hashes"])
    assert set(r0["state_dict"]) == set(r1["state_dict"])
    differ = [
        k for k in r0["state_dict"] if not torch.equal(r0["state_dict"][k], r1["state_dict"][k])
    ]
    assert not differ, f"weights differ across ranks: {differ[:5]}"

    node0, node1 = tmp_path / "node0", tmp_path / "node1"
    assert (node0 / "checkpoints" / "last.ckpt").is_file() and (node0 / "generator.pt").is_file()
    assert list((node0 / "samples").glob("*.png"))
    for output in ("checkpoints", "samples", "generator.pt"):
        assert not (node1 / output).exists(), f"rank 1 wrote {output}"
