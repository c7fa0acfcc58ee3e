"""How a cluster stops a job: a real SIGTERM to the process group mid-run leaves a fresh
``last.ckpt``, one line with the resume command, exit status 143 and no traceback (data loader
workers included), and the resume ends bit-identical to the run that was never stopped."""

import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import ROOT

from stylegan.callbacks.preemption import requeued_checkpoint, resume_command
from stylegan.checkpoints import safe_torch_load


def _images(ckpt: Path) -> int:
    return safe_torch_load(ckpt)["stylegan"]["progress"]["images_seen"]


def _tensors(obj) -> list:
    if torch.is_tensor(obj):
        return [obj]
    if isinstance(obj, dict):
        return [t for key in sorted(obj, key=str) for t in _tensors(obj[key])]
    if isinstance(obj, list | tuple):
        return [t for item in obj for t in _tensors(item)]
    return []


@pytest.mark.slow
def test_a_sigterm_to_the_process_group_saves_last_ckpt_and_resumes_bit_identically(
    smoke_run, tmp_path, celeba_root
):
    run_dir = tmp_path / "run"
    args = [
        "experiment=smoke",
        "logger=none",
        f"data.root={celeba_root}",
        "data.num_workers=2",  # the workers get the group's SIGTERM too
        f"paths.cache_dir={smoke_run.parent / 'cache'}",
        "callbacks.checkpoint.every_kimg=0.2",  # only to see the run progress
        "callbacks.checkpoint.keep=0",
    ]
    proc = subprocess.Popen(
        [sys.executable, "train.py", *args, f"hydra.run.dir={run_dir}"],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        start_new_session=True,  # its own process group, as under a scheduler
    )
    last = run_dir / "checkpoints" / "last.ckpt"
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if last.exists() and _images(last) > 700:  # at 16px, mid-epoch
            break
        time.sleep(0.1)
    signalled_at = _images(last)
    os.killpg(proc.pid, signal.SIGTERM)
    _, err = proc.communicate(timeout=120)

    assert proc.returncode == 128 + signal.SIGTERM, err[-3000:]
    assert "Traceback" not in err and "killed by signal" not in err, err[-3000:]
    lines = [line for line in err.splitlines() if line.startswith("stopped by SIGTERM")]
    assert len(lines) == 1, err[-3000:]
    assert f"saved {last}; resume with: python train.py " in lines[0]
    saved = safe_torch_load(last)
    assert saved["stylegan"]["progress"]["images_seen"] > signalled_at  # fresh, not periodic
    assert saved["stylegan"]["progress"]["images_seen"] % 200 != 0
    assert saved["callbacks"]["ExactResume"]["loader"]["batches"] > 0  # mid-epoch

    # Resume with the printed command (in a new folder), to the end of the run.
    command = shlex.split(lines[0].split("resume with: ", 1)[1])
    assert command[:2] == ["python", "train.py"] and command[-1] == f"ckpt_path={last}"
    resumed_dir = tmp_path / "resumed"
    done = subprocess.run(
        [sys.executable, *command[1:], f"hydra.run.dir={resumed_dir}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    a = safe_torch_load(resumed_dir / "checkpoints" / "last.ckpt")
    b = safe_torch_load(smoke_run / "checkpoints" / "last.ckpt")
    assert a["stylegan"]["progress"] == b["stylegan"]["progress"]
    different = [k for k, v in a["state_dict"].items() if not torch.equal(v, b["state_dict"][k])]
    assert not different, f"{len(different)} tensors differ, e.g. {different[:3]}"
    moments_a, moments_b = _tensors(a["optimizer_states"]), _tensors(b["optimizer_states"])
    assert len(moments_a) == len(moments_b) > 0
    assert all(torch.equal(x, y) for x, y in zip(moments_a, moments_b, strict=True))


def test_a_requeued_slurm_job_resumes_from_its_last_ckpt(tmp_path, monkeypatch):
    last = tmp_path / "checkpoints" / "last.ckpt"
    last.parent.mkdir()
    last.write_bytes(b"")
    monkeypatch.delenv("SLURM_RESTART_COUNT", raising=False)
    assert requeued_checkpoint(tmp_path) is None  # a first start never resumes by itself
    monkeypatch.setenv("SLURM_RESTART_COUNT", "1")
    assert requeued_checkpoint(tmp_path) == last
    assert requeued_checkpoint(tmp_path / "elsewhere") is None
    assert resume_command(last) == f"python train.py <the same overrides> ckpt_path={last}"
