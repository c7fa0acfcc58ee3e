"""Issue 10, "nothing lost, nothing run": safe checkpoint loading, the divergence guard,
bit-identical resume after SIGKILL, hostile images, failing checkpoint writes, two runs sharing
one cache."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import ROOT

from stylegan.checkpoints import (
    GENERATOR_VERSION,
    atomic_torch_save,
    generator_export,
    load_generator,
    safe_torch_load,
)
from stylegan.errors import UserError
from stylegan.networks import Generator

TINY = dict(z_dim=16, w_dim=16, mapping_layers=2, channel_base=128, channel_max=16)


def one_error_line(result: subprocess.CompletedProcess) -> str:
    """The CLI failed with exit 2 and exactly one ``error:`` line, no traceback."""
    assert result.returncode == 2, result.stderr[-3000:]
    assert "Traceback" not in result.stderr + result.stdout, result.stderr[-3000:]
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines[-1].startswith("error: "), result.stderr[-3000:]
    return lines[-1]


# ---------------------------------------------------------------------------- safe loading
class _Payload:
    """Unpickling this runs ``os.mkdir(marker)``: what a hostile ``generator.pt`` would do."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


@pytest.fixture
def hostile_files(tmp_path) -> dict[str, Path]:
    """A malicious, a truncated, a garbage and a from-the-future ``generator.pt``, and the marker
    the malicious one creates if its payload ever runs."""
    marker = tmp_path / "payload-ran"
    good = generator_export(Generator(resolution=8, **TINY), resolution=8, images_seen=0)
    files = {"marker": marker}
    files["evil"] = tmp_path / "evil.pt"
    torch.save({**good, "note": _Payload(marker)}, files["evil"])
    files["good"] = atomic_torch_save(good, tmp_path / "good.pt")
    files["truncated"] = tmp_path / "truncated.pt"
    files["truncated"].write_bytes(files["good"].read_bytes()[:300])
    files["garbage"] = tmp_path / "garbage.pt"
    files["garbage"].write_bytes(b"not a checkpoint\n" * 64)
    files["future"] = atomic_torch_save(
        {**good, "version": GENERATOR_VERSION + 1}, tmp_path / "future.pt"
    )
    return files


def test_a_malicious_pickle_is_refused_and_its_payload_never_runs(hostile_files):
    with pytest.raises(UserError, match=r"refusing to load .*evil\.pt: it names posix\.mkdir"):
        load_generator(hostile_files["evil"])
    with pytest.raises(UserError, match="refusing to load"):
        safe_torch_load(hostile_files["evil"])
    assert not hostile_files["marker"].exists()
    generator, info = load_generator(hostile_files["good"])  # our own files still load
    assert info["resolution"] == 8 and isinstance(generator, Generator)


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("truncated", "truncated or not a PyTorch checkpoint"),
        ("garbage", "truncated or not a PyTorch checkpoint"),
        ("future", f"newer than this stylegan reads ({GENERATOR_VERSION}); upgrade"),
    ],
)
def test_truncated_garbage_and_newer_files_are_one_line_errors(hostile_files, name, message):
    with pytest.raises(UserError) as error:
        load_generator(hostile_files[name])
    assert message in str(error.value) and "\n" not in str(error.value)


def test_the_clis_refuse_a_malicious_checkpoint_in_one_line(hostile_files, tmp_path):
    """sample.py, fid.py and train.py's ckpt_path= (resume) refuse it; the payload never runs."""
    evil = hostile_files["evil"]
    runs = {
        "sample.py": ["sample.py", f"ckpt={evil}", f"hydra.run.dir={tmp_path / 's'}"],
        "fid.py": ["fid.py", f"ckpt={evil}", f"hydra.run.dir={tmp_path / 'f'}"],
        "train.py": [
            "train.py",
            "experiment=smoke",
            "logger=none",
            f"ckpt_path={evil}",
            f"paths.cache_dir={tmp_path / 'cache'}",
            f"data.root={ROOT.parent / 'shared' / 'celeba'}",
            f"hydra.run.dir={tmp_path / 't'}",
        ],
    }
    procs = {
        name: subprocess.Popen(
            [sys.executable, *args],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
        )
        for name, args in runs.items()
    }
    for name, proc in procs.items():
        out, err = proc.communicate(timeout=600)
        line = one_error_line(subprocess.CompletedProcess(proc.args, proc.returncode, out, err))
        assert "refusing to load" in line and "evil.pt" in line, (name, line)
    assert not hostile_files["marker"].exists()


def test_our_files_need_nothing_outside_the_allow_list(smoke_run):
    """Every file a run writes loads with weights_only=True and the (empty) allow-list."""
    for path in (smoke_run / "checkpoints" / "last.ckpt", smoke_run / "generator.pt"):
        assert isinstance(safe_torch_load(path), dict)
