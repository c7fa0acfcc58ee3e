"""The prepared cache's crash safety and the loader's sampling, flips and DDP behaviour.

``test_datamodule.py`` covers the basics (shapes, range, flip, crop, filters, split, corrupt files,
errors, cache hits and invalidation, folder layout); this file covers what those do not: a killed
or interrupted build is never trusted, skipped rows are dropped exactly, the sampler is endless,
lazy, deterministic and sharded by rank (also under Lightning DDP), the Hydra data configs
instantiate, and the real-image subset for FID.
"""

import atexit
import itertools
import json
import os
import shutil
import socket
import subprocess
import sys
import warnings
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from PIL import Image

from stylegan.data import CelebADataModule, Crop, DataError, build_cache
from stylegan.data import cache as cache_module
from stylegan.data.celeba import ShuffledPasses
from stylegan.errors import ConfigError


def _copy_images(celeba_root, folder, count):
    folder.mkdir(parents=True, exist_ok=True)
    names = [f"{i:06d}.jpg" for i in range(1, count + 1)]
    for name in names:
        shutil.copy(celeba_root / "img_align_celeba" / name, folder / name)
    return names


def _mean_2x2(image):
    """The official dataset tool's level below: each pixel the rounded mean of a 2×2 block."""
    c, h, w = image.shape
    blocks = image.astype(np.float64).reshape(c, h // 2, 2, w // 2, 2)
    return np.rint(blocks.mean(axis=(2, 4))).astype(np.uint8)


def _expected(path, crop, resolution):
    """What the cache should hold for ``path``: a manual PIL crop, a Lanczos resize to the largest
    power of two the crop holds, then 2×2 means down to ``resolution``; CHW."""
    with Image.open(path) as image:
        rgb = image.convert("RGB")
    cropped = rgb.crop(crop.box(*rgb.size))
    base = 2 ** int(np.log2(min(cropped.size)))
    out = cropped.resize((base, base), Image.Resampling.LANCZOS)
    level = np.asarray(out).transpose(2, 0, 1)
    while level.shape[-1] > resolution:
        level = _mean_2x2(level)
    return level


# ----------------------------------------------------------------------------- the cache


def test_skipped_images_leave_exactly_the_readable_rows_in_order(celeba_root, tmp_path):
    folder = tmp_path / "images"
    names = _copy_images(celeba_root, folder, 8)
    data = (folder / names[2]).read_bytes()
    (folder / names[2]).write_bytes(data[: len(data) // 3])  # truncated JPEG
    (folder / "zz_garbage.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    crop = Crop()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        prepared = build_cache(
            [*names, "zz_garbage.jpg"],
            root=folder,
            resolutions=[8, 32],
            crop=crop,
            cache_dir=tmp_path / "cache",
            num_workers=2,
        )
    messages = [str(w.message) for w in caught if "unreadable" in str(w.message)]
    assert len(messages) == 1
    assert "skipped 2 " in messages[0] and str(folder / names[2]) in messages[0]
    assert "\n" not in messages[0]
    readable = [n for n in names if n != names[2]]
    assert prepared.files == readable and prepared.skipped == 2
    for resolution in (8, 32):
        array = np.load(prepared.path(resolution))  # a regular, complete .npy after the trim
        assert array.shape == (7, 3, resolution, resolution)
        for row, name in enumerate(readable):
            assert np.array_equal(array[row], _expected(folder / name, crop, resolution))
    assert not list(prepared.folder.glob(".tmp-*"))


def test_an_interrupted_build_leaves_nothing_that_is_trusted_later(
    celeba_root, tmp_path, monkeypatch
):
    folder = tmp_path / "images"
    names = _copy_images(celeba_root, folder, 12)
    real = cache_module.load_resized
    calls = []

    def dies_halfway(*args):
        calls.append(1)
        if len(calls) > 6:
            raise KeyboardInterrupt  # Ctrl-C or a kill in the middle of the build
        return real(*args)

    monkeypatch.setattr(cache_module, "load_resized", dies_halfway)
    args = dict(root=folder, resolutions=[8], crop=Crop(), cache_dir=tmp_path / "cache")
    with pytest.raises(KeyboardInterrupt):
        build_cache(names, num_workers=0, **args)
    (key_folder,) = (tmp_path / "cache").iterdir()
    assert list(key_folder.iterdir()) == []  # no manifest, no array, no temporary
    monkeypatch.setattr(cache_module, "load_resized", real)
    prepared = build_cache(names, num_workers=0, **args)
    assert prepared.files == names and prepared.has(8)


def test_killed_builds_are_cleaned_up_and_half_caches_rebuilt(celeba_root, tmp_path):
    folder = tmp_path / "images"
    names = _copy_images(celeba_root, folder, 6)
    args = dict(root=folder, crop=Crop(), cache_dir=tmp_path / "cache", num_workers=0)
    prepared = build_cache(names, resolutions=[8], **args)
    key_folder = prepared.folder
    # A temporary of a process on this host that no longer exists, and one of a live process.
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], stdout=-1)
    host = socket.gethostname()
    stale = key_folder / f".tmp-{host}-{int(dead.stdout)}-abc-images_16.npy"
    live = key_folder / f".tmp-{host}-{os.getpid()}-abc-images_16.npy"
    stale.write_bytes(b"half")
    live.write_bytes(b"in progress")
    # An array that is not what the manifest says (e.g. copied in by hand) is not trusted.
    np.save(key_folder / "images_16.npy", np.zeros((2, 3, 16, 16), np.uint8))
    rebuilt = build_cache(names, resolutions=[8, 16], **args)
    assert not stale.exists() and live.exists()
    assert rebuilt.array(16).shape == (6, 3, 16, 16) and rebuilt.array(16).any()
    # A build killed after its arrays but before its manifest: the folder is built again.
    (key_folder / "manifest.json").unlink()
    again = build_cache(names, resolutions=[8], **args)
    assert again.files == names
    assert json.loads((key_folder / "manifest.json").read_text())["skipped"] == 0


def test_two_builders_of_one_cache_do_not_collide(celeba_root, tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    folder = tmp_path / "images"
    names = _copy_images(celeba_root, folder, 16)
    args = dict(root=folder, resolutions=[8, 16], crop=Crop(), cache_dir=tmp_path / "cache")
    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda _: build_cache(names, num_workers=1, **args), range(2)))
    assert results[0].folder == results[1].folder
    final = build_cache(names, num_workers=0, **args)
    for resolution in (8, 16):
        row = _expected(folder / names[5], Crop(), resolution)
        assert np.array_equal(final.array(resolution)[5], row)


def test_no_readable_image_is_a_one_line_error(tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    (folder / "a.jpg").write_bytes(b"nope")
    with pytest.raises(DataError, match=r"none of the 1 images .* could be read") as error:
        build_cache(["a.jpg"], root=folder, resolutions=[8], crop=Crop(), cache_dir=tmp_path)
    assert "\n" not in str(error.value)


def test_the_build_bar_obeys_tqdm_disable(celeba_root, tmp_path):
    """The benchmarks silence tqdm with TQDM_DISABLE=1 (tqdm reads it at import): a build that
    passes its own ``disable=False`` would print its bar into their tables anyway."""
    folder = tmp_path / "images"
    _copy_images(celeba_root, folder, 3)
    build = (
        "import sys; from stylegan.data import Crop, build_cache; "
        "build_cache(['000001.jpg', '000002.jpg', '000003.jpg'], root=sys.argv[1], "
        "resolutions=[8], crop=Crop(), cache_dir=sys.argv[2], num_workers=0)"
    )

    def bar_of_a_build(cache: str, **env: str) -> str:
        done = subprocess.run(
            [sys.executable, "-c", build, str(folder), str(tmp_path / cache)],
            capture_output=True,
            text=True,
            env={**os.environ, **env},
            check=True,
        )
        return done.stderr

    assert "Preparing 3 images" in bar_of_a_build("shown", TQDM_DISABLE="")
    assert "Preparing" not in bar_of_a_build("silenced", TQDM_DISABLE="1")


def test_each_cached_resolution_is_the_2x2_mean_of_the_one_above(celeba_root, tmp_path):
    """Official dataset tool: level r/2 is the box average of level r, so the reals match D's
    average-pool skip path and the fade-in; the top level is a Lanczos resize of the crop."""
    folder = tmp_path / "images"
    names = _copy_images(celeba_root, folder, 6)
    resolutions = [4, 8, 16, 32, 64]
    prepared = build_cache(
        names,
        root=folder,
        resolutions=resolutions,
        crop=Crop(),
        cache_dir=tmp_path / "c",
        progress=False,
    )
    for low, high in itertools.pairwise(resolutions):
        assert np.array_equal(
            prepared.array(low), np.stack([_mean_2x2(x) for x in prepared.array(high)])
        )
    # 89-px-wide frames: the crop is 64 px, so 64 px is the Lanczos base level itself.
    for row, name in enumerate(names):
        assert np.array_equal(prepared.array(64)[row], _expected(folder / name, Crop(), 64))
    # Above the base (the crop holds no more detail), a Lanczos resize of the crop.
    up = cache_module.resize_pyramid(Image.new("RGB", (40, 40), (10, 200, 30)), [64, 32, 16])
    assert {r: a.shape for r, a in up.items()} == {r: (3, r, r) for r in (64, 32, 16)}
    assert np.array_equal(up[16], _mean_2x2(up[32]))


def test_crop_stays_inside_any_frame():
    for width, height in ((89, 109), (178, 218), (300, 100), (100, 300), (7, 5)):
        for crop in (Crop(), Crop(1.0, 0.5), Crop(0.9, 0.95), Crop(0.5, 0.05)):
            left, top, right, bottom = crop.box(width, height)
            assert 0 <= left < right <= width and 0 <= top < bottom <= height
            assert right - left == bottom - top
    assert Crop(1.0, 0.5).box(300, 100) == (100, 0, 200, 100)  # landscape: the shorter side
    # The same fractions on the official frame and the half-size copy give the same framing.
    full, half = Crop().box(178, 218), Crop().box(89, 109)
    assert all(abs(f / 2 - h) <= 1 for f, h in zip(full, half, strict=True))


def test_exif_orientation_is_applied(celeba_root, tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    with Image.open(celeba_root / "img_align_celeba" / "000001.jpg") as image:
        upright = image.convert("RGB")
    exif = Image.Exif()
    exif[0x0112] = 6  # stored rotated; viewers turn it 90° clockwise
    upright.transpose(Image.Transpose.ROTATE_90).save(folder / "phone.png", exif=exif)
    upright.save(folder / "plain.png")
    prepared = build_cache(
        ["phone.png", "plain.png"],
        root=folder,
        resolutions=[16],
        crop=Crop(),
        cache_dir=tmp_path / "cache",
    )
    phone, plain = prepared.array(16).astype(int)
    assert np.abs(phone - plain).mean() < 1.0


# ----------------------------------------------------------------------------- the sampler


def test_sampler_is_lazy_endless_and_reshuffles_by_epoch():
    sampler = ShuffledPasses(200_000, passes=5_000, seed=3)
    assert len(sampler) == 10**9  # nothing materialised
    first = [i for i, _ in zip(sampler, range(400_000), strict=False)]
    assert sorted(first[:200_000]) == list(range(200_000))  # pass 0: each image once
    assert sorted(i - 200_000 for i in first[200_000:]) == list(range(200_000))  # pass 1
    assert first[:200_000] != [i - 200_000 for i in first[200_000:]]  # reshuffled
    again = ShuffledPasses(200_000, passes=5_000, seed=3)
    assert [i for i, _ in zip(again, range(1000), strict=False)] == first[:1000]
    again.set_epoch(1)
    assert [i for i, _ in zip(again, range(1000), strict=False)] != first[:1000]
    assert isinstance(sampler, torch.utils.data.DistributedSampler)


def test_sampler_shards_by_rank():
    shards = [list(ShuffledPasses(11, passes=3, seed=0, rank=r, world=2)) for r in range(2)]
    assert len(shards[0]) == len(shards[1]) == 15  # equal steps on every rank
    for p in range(3):
        mine = [set(i - 11 * p for i in s if 11 * p <= i < 11 * (p + 1)) for s in shards]
        assert len(mine[0]) == len(mine[1]) == 5 and not mine[0] & mine[1]


def test_flips_are_per_draw_and_deterministic(make_dm):
    dm = make_dm(hflip_p=0.5)
    dm.set_stage(8, 8)
    dataset = dm.train_dataloader().dataset
    draws = range(0, 64 * 40)
    flips = [dataset.flipped(i) for i in draws]
    assert 0.45 < np.mean(flips) < 0.55
    # The same image is flipped in some passes and not in others.
    assert len({dataset.flipped(5 + 64 * p) for p in range(20)}) == 2
    again = make_dm(hflip_p=0.5)
    again.set_stage(8, 8)
    assert [again.train_dataloader().dataset.flipped(i) for i in draws] == flips


def test_loader_with_worker_processes(make_dm):
    dm = make_dm(num_workers=2, hflip_p=0.0)
    dm.set_stage(16, 8)
    loader = dm.train_dataloader()
    assert loader.persistent_workers and loader.drop_last
    batches = iter(loader)
    seen = torch.cat([next(batches) for _ in range(8)])  # one pass: 64 images
    array = torch.from_numpy(np.array(dm.prepared.array(16)))
    rows = {bytes(img.numpy()) for img in array}
    assert {bytes(img.numpy()) for img in seen} == rows
    plain = make_dm(num_workers=0)
    plain.set_stage(8, 4)
    assert not plain.train_dataloader().persistent_workers


class _Probe(L.LightningModule):
    """Records which cached images each rank trains on, and the sampler Lightning used."""

    def __init__(self, out: str) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(()))
        self.out = out
        self.seen: list[str] = []

    def training_step(self, batch, batch_idx):
        assert batch.dtype == torch.float32 and batch.min() >= -1 and batch.max() <= 1
        images = ((batch + 1) * 127.5).round().to(torch.uint8)
        self.seen += [bytes(img.numpy()).hex()[:64] for img in images]
        return (self.weight * batch.mean()) ** 2 + self.weight

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.0)

    def setup(self, stage: str) -> None:
        # A spawned rank exits with its gloo group alive (Lightning never destroys it); its
        # threads racing interpreter shutdown aborted a rank once ("terminate called without
        # an active exception"). Destroy the group before the interpreter tears down.
        if torch.distributed.is_initialized():
            atexit.register(torch.distributed.destroy_process_group)

    def on_train_end(self) -> None:
        sampler = self.trainer.train_dataloader.sampler
        record = {"sampler": type(sampler).__name__, "seen": self.seen, "world": sampler.world}
        Path(self.out, f"rank{self.global_rank}.json").write_text(json.dumps(record))


def _fit(dm, out, **trainer_kwargs):
    trainer = L.Trainer(
        accelerator="cpu",
        max_steps=4,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        **trainer_kwargs,
    )
    trainer.fit(_Probe(str(out)), datamodule=dm)


def test_lightning_keeps_the_sampler_on_one_device(make_dm, tmp_path):
    dm = make_dm(hflip_p=0.0)
    dm.set_stage(8, 4)
    _fit(dm, tmp_path, devices=1)  # use_distributed_sampler=True, Lightning's default
    record = json.loads((tmp_path / "rank0.json").read_text())
    assert record["sampler"] == "ShuffledPasses" and len(record["seen"]) == 16


@pytest.mark.slow
def test_ddp_ranks_see_disjoint_images(make_dm, tmp_path):
    dm = make_dm(hflip_p=0.0, limit=32)
    dm.set_stage(8, 4)
    sys.path.insert(0, str(Path(__file__).parent))  # the spawned ranks import this module
    _fit(dm, tmp_path, devices=2, strategy="ddp_spawn")
    records = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    assert all(r["sampler"] == "ShuffledPasses" and r["world"] == 2 for r in records)
    seen = [r["seen"] for r in records]
    assert len(seen[0]) == len(seen[1]) == 16  # 4 steps of 4 images, first pass of 16 each
    assert not set(seen[0]) & set(seen[1])


# ----------------------------------------------------------------------------- module API


def _real_images(dm, resolution: int, count: int, seed: int = 0) -> torch.Tensor:
    return torch.cat(list(dm.real_batches(resolution, count, 256, seed)))


def test_real_images_are_a_fixed_subset_independent_of_the_training_seed(make_dm):
    a = _real_images(make_dm(seed=1, hflip_p=1.0), 16, 20, seed=0)
    b = _real_images(make_dm(seed=2, hflip_p=1.0), 16, 20, seed=0)
    assert a.shape == (20, 3, 16, 16) and a.dtype == torch.uint8
    assert torch.equal(a, b)
    dm = make_dm()
    assert not torch.equal(_real_images(dm, 16, 20, seed=1), a)
    assert _real_images(dm, 16, 1000).shape[0] == 64  # at most every image
    assert _real_images(dm, 32, 4).shape == (4, 3, 32, 32)  # a new resolution, on demand


def test_fingerprint_follows_files_crop_and_filters(make_dm):
    dm = make_dm()
    assert make_dm(hflip_p=1.0).fingerprint == dm.fingerprint
    assert make_dm(crop_center_y=0.5).fingerprint != dm.fingerprint
    assert make_dm(exclude_attributes=["Eyeglasses"]).fingerprint != dm.fingerprint


def test_split_is_ignored_without_a_partition_file(celeba_root, tmp_path, make_dm):
    root = tmp_path / "celeba"
    _copy_images(celeba_root, root / "img_align_celeba", 6)
    assert len(make_dm(root=str(root), split="test")) == 6


def test_attribute_filter_without_the_attribute_file_is_a_clear_error(
    celeba_root, tmp_path, make_dm
):
    root = tmp_path / "celeba"
    _copy_images(celeba_root, root / "img_align_celeba", 4)
    with pytest.raises(ConfigError, match=r"attribute filters need .*list_attr_celeba\.txt") as e:
        make_dm(root=str(root), require_attributes=["Smiling"])
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("group", ["celeba", "folder"])
def test_hydra_data_configs_instantiate(group, celeba_root, train_config, tmp_path):
    root = celeba_root if group == "celeba" else celeba_root / "img_align_celeba"
    cfg = train_config(f"data={group}", f"data.root={root}", "data.limit=24")
    assert cfg.data.cache_dir.endswith("/data") and cfg.data.resolutions is None
    dm = instantiate(cfg.data, resolutions=[8], cache_dir=str(tmp_path / "cache"))
    assert isinstance(dm, CelebADataModule) and dm.layout == group
    dm.prepare_data()
    dm.setup("fit")
    dm.set_stage(8, 8)
    assert next(iter(dm.train_dataloader())).shape == (8, 3, 8, 8)
