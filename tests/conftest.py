"""Shared fixtures: the real CelebA sample beside the repo, and the real train.yaml composed for
CPU, tiny widths and no logger, with every path pointed into the test's temporary folder."""

import os
import subprocess
import sys
import traceback
from collections import Counter
from pathlib import Path
from typing import Any

import lightning as L
import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig
from torch.optim.optimizer import _get_value

import stylegan.module
import train as train_module

ROOT = Path(__file__).resolve().parents[1]
CONF_DIR = ROOT / "conf"
# Tiny models run fastest single-threaded, and two OpenMP pools fighting over two cores (pytest
# plus a training subprocess) are many times slower than one thread each.
os.environ.setdefault("OMP_NUM_THREADS", "1")
torch.set_num_threads(1)

CELEBA = Path(os.environ.get("CELEBA_ROOT", ROOT.parent / "shared" / "celeba"))


@pytest.fixture(scope="session")
def celeba_root() -> Path:
    if not (CELEBA / "img_align_celeba").is_dir():
        pytest.fail(f"the CelebA sample is expected at {CELEBA} (or set CELEBA_ROOT)")
    return CELEBA


@pytest.fixture(scope="session")
def artifact_dir() -> Path:
    """Where tests leave files for a person to look at after the run (the browser tests'
    screenshots): ``$STYLEGAN_TEST_ARTIFACTS``, else ``test-artifacts/`` in the repository
    (git-ignored; CI's clone keeps it)."""
    path = Path(os.environ.get("STYLEGAN_TEST_ARTIFACTS", ROOT / "test-artifacts"))
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="session")
def shared_cache_dir(tmp_path_factory) -> Path:
    """One data/FID cache for the whole session, so prepared images are built once."""
    return tmp_path_factory.mktemp("cache")


def compose_config(name: str, overrides: list[str]) -> DictConfig:
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(config_name=name, overrides=overrides)


@pytest.fixture
def train_config(tmp_path, celeba_root, shared_cache_dir):
    """``train_config(*overrides)``: the smoke experiment on the CelebA sample, logger off."""

    def make(*overrides: str) -> DictConfig:
        base = [
            "experiment=smoke",
            "logger=none",
            f"paths.root_dir={ROOT}",
            f"paths.output_dir={tmp_path}",
            f"paths.cache_dir={shared_cache_dir}",
            f"data.root={celeba_root}",
            "callbacks.progress_bar=null",
            "callbacks.fid.every_kimg=0",  # tests that want FID turn it on, with a tiny network
            "callbacks.fid.at_train_end=false",
            "trainer.enable_progress_bar=false",
            "trainer.enable_model_summary=false",
        ]
        return compose_config("train", base + list(overrides))

    return make


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory, celeba_root) -> Path:
    """One finished ``experiment=smoke`` run (csv logger), shared by the tests that inspect a
    run's outputs: ``checkpoints/last.ckpt``, ``generator.pt``, ``samples/``, ``csv/``."""
    from train import train

    base = tmp_path_factory.mktemp("smoke")
    run_dir = base / "run"
    cfg = compose_config(
        "train",
        [
            "experiment=smoke",
            "logger=csv",
            f"paths.root_dir={ROOT}",
            f"paths.output_dir={run_dir}",
            f"paths.cache_dir={base / 'cache'}",
            f"data.root={celeba_root}",
            "callbacks.progress_bar=null",
            "trainer.enable_progress_bar=false",
        ],
    )
    train(cfg)
    return run_dir


def run_cli(script: str, *args: str, env: dict | None = None, timeout: float = 900):
    """Run an entry point (train.py, sample.py, fid.py) as a user would: no stdin, from the repo."""
    return subprocess.run(
        [sys.executable, script, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        env=env,
    )


def main_in_process(monkeypatch, capsys, module, *args: str) -> tuple[int, list[str]]:
    """``python <entry point> *args`` in-process, for a command that must fail: ``module.main()``
    with ``sys.argv`` set (Hydra's logging left alone, so no handler outlives the test); returns
    (exit status, stderr lines). The subprocess a real command costs buys nothing more here;
    tests/test_config.py runs the real commands."""
    argv = [f"{module.__name__}.py", *args, "hydra/job_logging=none", "hydra/hydra_logging=none"]
    monkeypatch.setattr(sys, "argv", argv)
    with pytest.raises(SystemExit) as exit_info:
        module.main()
    return exit_info.value.code, capsys.readouterr().err.strip().splitlines()


@pytest.fixture
def make_dm(celeba_root, tmp_path):
    """``make_dm(**kwargs)``: a CelebADataModule on 64 sample images at 8 and 16 px, cached in
    the test's folder, prepared and set up unless ``prepare=False``."""
    from stylegan.data import CelebADataModule

    def make(prepare: bool = True, **kwargs):
        args = dict(
            root=str(celeba_root),
            resolutions=[8, 16],
            cache_dir=str(tmp_path / "cache"),
            num_workers=0,
            limit=64,
        )
        args.update(kwargs)
        dm = CelebADataModule(**args)
        if prepare:
            dm.prepare_data()
            dm.setup("fit")
        return dm

    return make


@pytest.fixture
def fp16_on_cpu(monkeypatch):
    """``train(cfg)`` builds its Trainer with fp16 autocast and a GradScaler on the CPU (Lightning
    maps ``16-mixed`` on a CPU to bf16, so its ``MixedPrecision`` plugin is passed explicitly; run
    with ``trainer.precision=null``)."""
    from lightning.pytorch.plugins import MixedPrecision

    import train as train_module

    real = train_module.instantiate_group

    def with_fp16(conf, **kwargs):
        if "plugins" in kwargs:
            kwargs["plugins"] = [*kwargs["plugins"], MixedPrecision("16-mixed", "cpu")]
        return real(conf, **kwargs)

    monkeypatch.setattr(train_module, "instantiate_group", with_fp16)


# ---------------------------------------------------------------- host syncs in training steps
READS = ("item", "tolist", "__bool__", "__float__", "__int__")
# The module's two host-side draws (mixing on/off, crossover layer) come from CPU tensors by
# construction, on every device: reading them is no sync.
# Adam's step counts are CPU tensors too (torch keeps them there unless fused or capturable).
HOST_SIDE = {stylegan.module.host_random.__code__, _get_value.__code__}
STEPS = 20


class SyncCounter(L.Callback):
    """Counts device reads from the start of batch ``first`` to the start of ``first + STEPS``."""

    def __init__(self, first: int = 2) -> None:
        self.first = first
        self.counting = False
        self.calls: Counter = Counter()
        self.windows = 0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if batch_idx == self.first:
            self.counting = True
        elif batch_idx == self.first + STEPS:
            self.counting = False
            self.windows += 1

    def record(self, what: str) -> None:
        if self.counting and sys._getframe(2).f_code not in HOST_SIDE:
            where = traceback.extract_stack(limit=4)[0]
            self.calls[
                f"{what} at {where.filename.split('site-packages/')[-1]}:{where.lineno}"
            ] += 1


@pytest.fixture
def count_syncs(monkeypatch):
    """Counts host reads and ``torch.cuda.synchronize`` calls over ``STEPS`` training steps
    (tests/test_host_syncs.py on the CPU, tests/test_cuda.py on a GPU)."""
    counter = SyncCounter()

    def wrap(name: str, real: Any) -> Any:
        def counted(self, *args, **kwargs):
            counter.record(name)
            return real(self, *args, **kwargs)

        return counted

    for name in READS:
        monkeypatch.setattr(torch.Tensor, name, wrap(name, getattr(torch.Tensor, name)))
    monkeypatch.setattr(torch.cuda, "synchronize", lambda *a, **k: counter.record("synchronize"))
    real_build = train_module.build_callbacks
    monkeypatch.setattr(
        train_module, "build_callbacks", lambda *a, **k: [*real_build(*a, **k), counter]
    )
    return counter
