"""Issue 10, "nothing lost, nothing run": safe checkpoint loading, the divergence guard,
bit-identical resume after SIGKILL, hostile images, failing checkpoint writes, two runs sharing
one cache."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import ROOT
from probes import images_trained, probe_env, probe_overrides

from stylegan.callbacks import DivergenceError
from stylegan.callbacks.resume import capture_rng, restore_rng
from stylegan.checkpoints import (
    GENERATOR_VERSION,
    atomic_torch_save,
    generator_export,
    load_generator,
    safe_torch_load,
)
from stylegan.data.celeba import ShuffledPasses
from stylegan.errors import ConfigError, UserError
from stylegan.networks import Generator
from train import train

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


# ---------------------------------------------------------------------------- divergence guard
def _all_finite(ckpt: Path) -> bool:
    state = safe_torch_load(ckpt)["state_dict"]
    return all(t.isfinite().all() for t in state.values() if t.is_floating_point())


def test_a_diverging_run_stops_and_last_ckpt_keeps_the_last_finite_state(train_config, tmp_path):
    """8px trains normally; 16px has an lr of 1e30, so its first steps blow up. The run stops with
    one line, and nothing written after the 8px -> 16px checkpoint holds the diverged state."""
    cfg = train_config(
        "loss.max_lr=null",
        "+stage.lr.16=1.0e30",
        "stage.total_kimg=1.0",
        "callbacks.checkpoint.every_kimg=0.2",
        "callbacks.checkpoint.keep=0",
        "callbacks.samples=null",
    )
    with pytest.raises(DivergenceError) as error:
        train(cfg)
    message = str(error.value)
    last = tmp_path / "checkpoints" / "last.ckpt"
    assert "\n" not in message and "training diverged at kimg 0.5" in message, message
    assert "loss" in message and f"last finite checkpoint is {last} (kimg 0.512)" in message
    assert safe_torch_load(last)["stylegan"]["progress"]["images_seen"] == 512
    for ckpt in (tmp_path / "checkpoints").glob("*.ckpt"):
        assert _all_finite(ckpt), ckpt
    assert not (tmp_path / "generator.pt").exists()


@pytest.fixture
def nan_batch(monkeypatch):
    """Batch number 5 of the run is all NaN: the discriminator loss of that step is NaN."""
    from stylegan.data import CelebADataModule

    real = CelebADataModule.on_after_batch_transfer
    calls = []

    def poisoned(self, batch, dataloader_idx):
        batch = real(self, batch, dataloader_idx)
        calls.append(1)
        return torch.full_like(batch, float("nan")) if len(calls) == 5 else batch

    monkeypatch.setattr(CelebADataModule, "on_after_batch_transfer", poisoned)


def test_a_nan_loss_stops_the_run_naming_the_loss(train_config, nan_batch, tmp_path):
    cfg = train_config("stage.total_kimg=0.3", "callbacks.samples=null")
    with pytest.raises(DivergenceError, match=r"kimg 0\.064: the discriminator loss") as error:
        train(cfg)
    assert "no finite checkpoint was written before it" in str(error.value)
    assert not (tmp_path / "checkpoints" / "last.ckpt").exists()


def test_skip_step_drops_the_non_finite_step_and_finishes(train_config, nan_batch, tmp_path):
    cfg = train_config(
        "training.on_nonfinite=skip_step", "stage.total_kimg=0.3", "callbacks.samples=null"
    )
    with pytest.warns(UserWarning, match=r"skipped a non-finite step at kimg 0\.064") as caught:
        train(cfg)
    assert sum("skipped a non-finite step" in str(w.message) for w in caught) == 1
    last = tmp_path / "checkpoints" / "last.ckpt"
    assert safe_torch_load(last)["stylegan"]["progress"]["images_seen"] == 304
    assert _all_finite(last)


def test_an_unknown_policy_is_a_one_line_config_error(train_config):
    with pytest.raises(ConfigError, match=r"training\.on_nonfinite must be stop or skip_step"):
        train(train_config("training.on_nonfinite=ignore"))


# ---------------------------------------------------------------------------- exact resume
def test_the_sampler_resumes_at_any_draw():
    full = list(ShuffledPasses(10, passes=3, seed=1))
    for start in (0, 3, 10, 17, 30):
        resumed = ShuffledPasses(10, passes=3, seed=1, start=start)
        assert list(resumed) == full[start:] and len(resumed) == 30 - start


def test_rng_streams_survive_a_checkpoint_round_trip(tmp_path):
    import random

    import numpy as np

    torch.manual_seed(3), np.random.seed(3), random.seed(3)
    state = capture_rng()
    expected = (torch.rand(4), np.random.rand(4), random.random())
    atomic_torch_save({"rng": state}, tmp_path / "rng.ckpt")
    torch.manual_seed(9), np.random.seed(9), random.seed(9)
    restore_rng(safe_torch_load(tmp_path / "rng.ckpt")["rng"])  # weights_only, empty allow-list
    assert torch.equal(torch.rand(4), expected[0])
    assert np.array_equal(np.random.rand(4), expected[1]) and random.random() == expected[2]


def _start_killed_run(run_dir: Path, cache: Path, celeba_root: Path, num_workers: int):
    args = [
        "experiment=smoke",
        "logger=none",
        f"data.root={celeba_root}",
        f"data.num_workers={num_workers}",
        f"paths.cache_dir={cache}",
        "callbacks.checkpoint.every_kimg=0.2",
        "callbacks.checkpoint.keep=0",
        f"hydra.run.dir={run_dir}",
    ]
    proc = subprocess.Popen(
        [sys.executable, "train.py", *args],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
    )
    return proc, args


def _kill_after(proc: subprocess.Popen, last: Path, images: int) -> dict:
    deadline = time.time() + 300
    try:
        while time.time() < deadline and proc.poll() is None:
            if last.exists() and _progress(last)["images_seen"] > images:
                break
            time.sleep(0.1)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    return safe_torch_load(last)


def _progress(ckpt: Path) -> dict:
    return safe_torch_load(ckpt)["stylegan"]["progress"]  # writes are atomic: always whole


def _assert_bit_identical(ckpt: Path, reference: Path) -> None:
    a, b = safe_torch_load(ckpt), safe_torch_load(reference)
    assert a["stylegan"]["progress"] == b["stylegan"]["progress"]
    assert a["state_dict"].keys() == b["state_dict"].keys()
    different = [k for k, v in a["state_dict"].items() if not torch.equal(v, b["state_dict"][k])]
    assert not different, f"{len(different)} tensors differ, e.g. {different[:3]}"

    def tensors(obj):
        if torch.is_tensor(obj):
            return [obj]
        if isinstance(obj, dict):
            return [t for key in sorted(obj, key=str) for t in tensors(obj[key])]
        if isinstance(obj, list | tuple):
            return [t for item in obj for t in tensors(item)]
        return []

    moments_a, moments_b = tensors(a["optimizer_states"]), tensors(b["optimizer_states"])
    assert len(moments_a) == len(moments_b) > 0
    assert all(torch.equal(x, y) for x, y in zip(moments_a, moments_b, strict=True))


@pytest.mark.slow
def test_a_sigkilled_run_resumes_bit_identically(smoke_run, tmp_path, celeba_root):
    """SIGKILL two CLI runs mid-epoch (num_workers 0 in the 32px fade-in, num_workers 2 at 16px),
    resume each from its last.ckpt, and resume one from the checkpoint written at the 8px -> 16px
    change: all three end with the uninterrupted smoke run's weights, EMA, w_avg and Adam
    moments, bit for bit."""
    cache = smoke_run.parent / "cache"
    runs = {0: (tmp_path / "k0", 1600), 2: (tmp_path / "k2", 700)}
    procs = {nw: _start_killed_run(d, cache, celeba_root, nw) for nw, (d, _) in runs.items()}
    resumes, resumed_from = [], []
    for nw, (run_dir, images) in runs.items():
        proc, args = procs[nw]
        killed = _kill_after(proc, run_dir / "checkpoints" / "last.ckpt", images)
        loader = killed["callbacks"]["ExactResume"]["loader"]
        assert loader["batches"] > 0, loader  # killed mid-epoch, not at a resolution change
        if nw == 0:  # part-way through the 32px fade-in: the resume restores alpha mid-fade
            progress = killed["stylegan"]["progress"]
            assert progress["resolution"] == 32 and 0 < progress["alpha"] < 1, progress
        resumes.append([*args, f"ckpt_path={run_dir / 'checkpoints' / 'last.ckpt'}"])
        resumed_from.append(killed["stylegan"]["progress"]["images_seen"])
    epoch_end = tmp_path / "k2" / "checkpoints" / "kimg000000.512.ckpt"
    assert _progress(epoch_end)["resolution"] == 8  # written as 8px ended
    resumes.append([*resumes[1][:-2], f"hydra.run.dir={tmp_path / 'e'}", f"ckpt_path={epoch_end}"])
    resumed_from.append(_progress(epoch_end)["images_seen"])
    resumes[2] = [a.replace("data.num_workers=2", "data.num_workers=0") for a in resumes[2]]
    names = ("k0", "k2", "e")
    procs = [
        subprocess.Popen(
            [sys.executable, "train.py", *args, *probe_overrides(tmp_path / f"probe-{name}")],
            cwd=ROOT,
            env=probe_env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
        )
        for name, args in zip(names, resumes, strict=True)
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err[-3000:]
    reference = smoke_run / "checkpoints" / "last.ckpt"
    final = _progress(reference)["images_seen"]
    for name, start in zip(names, resumed_from, strict=True):
        _assert_bit_identical(tmp_path / name / "checkpoints" / "last.ckpt", reference)
        # Continued, not retrained: the resumed process trained on the remaining images only.
        assert 0 < start < final
        assert len(images_trained(tmp_path / f"probe-{name}")) == final - start, name


# ---------------------------------------------------------------------------- failing writes
@pytest.mark.parametrize(
    ("errno_", "reason"),
    [(28, "No space left on device"), (30, "Read-only file system")],
    ids=["disk-full", "read-only"],
)
def test_a_failed_checkpoint_write_keeps_last_ckpt_and_is_one_line(
    train_config, tmp_path, monkeypatch, errno_, reason
):
    """The third checkpoint write dies half-way (a patched writer: a test cannot fill the disk or
    remount it read-only here). The run stops with one line naming the file; last.ckpt still holds
    the second checkpoint and no temporary file is left behind."""
    import stylegan.atomic

    real_save, calls = torch.save, []

    def failing_save(obj, f, *args, **kwargs):
        calls.append(Path(f))
        if len(calls) == 3:
            Path(f).write_bytes(b"half a checkpoint")
            raise OSError(errno_, os.strerror(errno_))
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(stylegan.atomic.torch, "save", failing_save)
    cfg = train_config(
        "stage.total_kimg=1.0", "callbacks.checkpoint.every_kimg=0.2", "callbacks.samples=null"
    )
    with pytest.raises(UserError) as error:
        train(cfg)
    monkeypatch.undo()
    folder = tmp_path / "checkpoints"
    message = str(error.value)
    assert "\n" not in message and reason in message, message
    assert f"cannot write {folder / 'kimg000000.512.ckpt'}" in message
    assert safe_torch_load(folder / "last.ckpt")["stylegan"]["progress"]["images_seen"] == 400
    assert sorted(p.name for p in folder.iterdir()) == [
        "kimg000000.208.ckpt",
        "kimg000000.400.ckpt",
        "last.ckpt",
    ]


# ---------------------------------------------------------------------------- hostile images
def _png_header_only(path: Path, width: int, height: int) -> None:
    """A PNG whose header claims ``width`` x ``height`` RGB pixels (a few bytes on disk)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )


@pytest.fixture
def hostile_folder(celeba_root, tmp_path, monkeypatch) -> dict:
    """40 CelebA images plus one of each hostile kind; PIL's bomb limit lowered to 100k pixels so
    a real, decodable image can sit between the limit and twice the limit (where PIL only warns)."""
    import numpy as np
    from PIL import Image

    folder = tmp_path / "images"
    folder.mkdir()
    sources = sorted((celeba_root / "img_align_celeba").glob("*.jpg"))[:40]
    for src in sources:
        (folder / src.name).write_bytes(src.read_bytes())
    face = Image.open(sources[0]).convert("RGB")
    w = face.width
    rgba = np.array(face.convert("RGBA"))
    rgba[:, w // 2 :, 3] = 0  # the right half is transparent
    Image.fromarray(rgba).save(folder / "x_alpha.png")
    face.convert("L").save(folder / "x_gray.png")
    face.convert("CMYK").save(folder / "x_cmyk.jpg", quality=95)
    Image.new("RGB", (1, 1), (200, 10, 10)).save(folder / "x_tiny.png")
    (folder / "x_empty.jpg").write_bytes(b"")
    _png_header_only(folder / "x_bomb.png", 20000, 20000)  # above twice the real limit
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100_000)
    Image.new("RGB", (400, 400), (9, 9, 9)).save(folder / "x_big.png")  # 1.6x the patched limit
    noperm = folder / "x_noperm.jpg"
    noperm.write_bytes(sources[1].read_bytes())
    noperm.chmod(0)
    # Tests run as root, and root reads a mode-000 file anyway; so open() is patched to refuse it
    # the way the kernel refuses anyone else (EACCES), whoever runs the test.
    real_open = Image.open

    def open_like_the_kernel(fp, *args, **kwargs):
        if Path(fp) == noperm and not noperm.stat().st_mode & 0o444:
            raise PermissionError(13, "Permission denied", str(fp))
        return real_open(fp, *args, **kwargs)

    monkeypatch.setattr(Image, "open", open_like_the_kernel)
    return {"folder": folder, "good": [s.name for s in sources], "face": face}


def test_hostile_images_are_converted_or_skipped_and_counted_in_one_line(hostile_folder, tmp_path):
    import warnings

    import numpy as np
    from PIL import Image

    from stylegan.data import Crop, build_cache

    folder = hostile_folder["folder"]
    names = sorted(p.name for p in folder.iterdir())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        prepared = build_cache(
            names, root=folder, resolutions=[8], crop=Crop(), cache_dir=tmp_path / "c"
        )
    lines = [str(w.message) for w in caught if "skipped" in str(w.message)]
    assert len(lines) == 1 and "\n" not in lines[0], lines
    for part in (
        "skipped 5 unreadable or unusable image(s) of 48",
        "1 empty",
        "1 unreadable (permission denied)",
        "2 above the decompression-bomb limit",
        "1 too small (crop under 8px)",
    ):
        assert part in lines[0], lines[0]
    converted = ["x_alpha.png", "x_cmyk.jpg", "x_gray.png"]
    assert prepared.files == sorted(hostile_folder["good"] + converted)
    rows = {name: prepared.array(8)[prepared.files.index(name)] for name in converted}
    assert (rows["x_alpha.png"][:, :, -1] == 255).all()  # transparent -> white, not hidden RGB
    assert (rows["x_alpha.png"][:, :, :2] < 250).any()  # the opaque half is the face
    gray = rows["x_gray.png"]
    assert (gray[0] == gray[1]).all() and (gray[1] == gray[2]).all()
    face = Crop().box(*hostile_folder["face"].size)
    expected = np.asarray(
        hostile_folder["face"].crop(face).resize((8, 8), Image.Resampling.LANCZOS)
    ).transpose(2, 0, 1)
    assert np.abs(rows["x_cmyk.jpg"].astype(int) - expected).mean() < 6  # colours, not inverted


def test_training_on_a_hostile_folder_runs_to_the_end(hostile_folder, train_config, tmp_path):
    cfg = train_config(
        "data=folder",
        f"data.root={hostile_folder['folder']}",
        f"paths.cache_dir={tmp_path / 'cache'}",
        "stage.total_kimg=0.6",
        "callbacks.samples=null",
    )
    train(cfg)
    assert _progress(tmp_path / "checkpoints" / "last.ckpt")["images_seen"] == 608


# ---------------------------------------------------------------------------- a shared cache
@pytest.mark.slow
def test_two_train_processes_share_one_cache_dir(tmp_path, celeba_root):
    """Two train.py processes started together on the same data with one empty paths.cache_dir:
    both build the prepared images and the FID real statistics at the same time; both finish,
    reach the same FID, and leave one complete cache of each kind and no temporary files."""
    cache = tmp_path / "cache"
    common = [
        "experiment=smoke",
        "logger=none",
        f"data.root={celeba_root}",
        "data.limit=1024",  # enough decoding for the two builds to overlap
        "data.num_workers=2",
        f"paths.cache_dir={cache}",
        "stage.total_kimg=0.1",  # what overlaps is the cache builds, before any step
        "callbacks.samples=null",
        "callbacks.fid.feature_network=tiny",
        "callbacks.fid.at_train_end=true",
        "callbacks.fid.num_images=256",
        "callbacks.progress_bar=null",
        "trainer.enable_progress_bar=false",
    ]
    procs = [
        subprocess.Popen(
            [sys.executable, "train.py", *common, f"hydra.run.dir={tmp_path / name}"],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
        )
        for name in ("a", "b")
    ]
    outputs = [proc.communicate(timeout=600) for proc in procs]
    for proc, (_, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err[-3000:]
    fid_lines = [[ln for ln in out.splitlines() if ln.startswith("FID ")] for out, _ in outputs]
    assert fid_lines[0] and fid_lines[0] == fid_lines[1], fid_lines  # same data, seed, stats
    stats = list((cache / "fid").glob("fid-real-*.pt"))
    assert len(stats) == 1 and safe_torch_load(stats[0])["n"] == 256
    (prepared,) = [p for p in (cache / "data").iterdir() if p.is_dir()]
    assert {p.name for p in prepared.iterdir()} == {
        "manifest.json",
        "images_8.npy",
        "images_16.npy",
        "images_32.npy",
    }
    assert not [p for p in cache.rglob("*") if p.name.startswith(".")]  # no temporaries left
    for name in ("a", "b"):
        assert _progress(tmp_path / name / "checkpoints" / "last.ckpt")["images_seen"] == 112


def test_a_malicious_fid_statistics_cache_is_recomputed_not_run(tmp_path):
    from stylegan.metrics import fid as fidmod
    from stylegan.metrics import load_feature_network

    tiny = load_feature_network("tiny")
    images = torch.randint(0, 256, (10, 3, 16, 16), dtype=torch.uint8)
    kw = dict(key="k", count=10, feature_name="tiny", cache_dir=tmp_path, batch_size=5)
    path = fidmod.real_stats_cache_path(tmp_path, key="k", count=10, feature_name="tiny")
    marker = tmp_path / "payload-ran"
    torch.save({"format": "x", "note": _Payload(marker)}, path)
    stats = fidmod.real_statistics(lambda bs: images.split(bs), feature_net=tiny, **kw)
    assert stats.n == 10 and not marker.exists()
    assert safe_torch_load(path)["n"] == 10  # replaced by real statistics


def test_ddp_ranks_draw_different_latents_from_one_seed():
    """Every process is seeded alike; ExactResume offsets the streams by rank at train start, so
    two ranks never generate the same fakes in a step."""
    from types import SimpleNamespace

    from stylegan.callbacks import ExactResume

    draws = []
    for rank in (0, 1, 0):
        torch.manual_seed(7)
        trainer = SimpleNamespace(world_size=2, global_rank=rank)
        ExactResume().on_train_start(trainer, None)
        draws.append(torch.randn(4))
    assert not torch.equal(draws[0], draws[1])  # rank 0 vs rank 1
    assert torch.equal(draws[0], draws[2])  # still a pure function of (seed, rank)
