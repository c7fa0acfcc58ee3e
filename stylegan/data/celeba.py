"""The CelebA LightningDataModule: which images, how they are prepared, how batches are served.

It selects images (CelebA's official layout with its split and attribute files, or any image
folder), has :mod:`stylegan.data.cache` prepare them once per resolution, and serves uint8
batches at whatever resolution and batch size the progressive callback asks for through
:meth:`CelebADataModule.set_stage`. Batches become floats in [-1, 1] on the device
(``on_after_batch_transfer``), so workers only copy bytes. Horizontal flips happen in the dataset.

Endless loading, and DDP: training, not the loader, ends an epoch (at the next resolution change),
so :class:`ShuffledPasses` runs many reshuffled passes over the images (``SAMPLES_PER_EPOCH``
draws), lazily: one permutation in memory at a time. It subclasses ``DistributedSampler`` and
shards every pass by rank itself, so Lightning leaves it in place whatever
``use_distributed_sampler`` says (its replacement would materialise and re-shard the whole
stream). Order and flips are a pure function of (``seed``, epoch, draw), so a run is repeatable
however many loader workers there are.
"""

import copy
import functools
import math
import os
import signal
from collections.abc import Iterator, Sequence
from pathlib import Path

import lightning as L
import numpy as np
import torch
from lightning.fabric.utilities.seed import pl_worker_init_function
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from stylegan.data.cache import Crop, DataError, PreparedImages, build_cache
from stylegan.errors import ConfigError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp"}
SPLITS = {"train": 0, "valid": 1, "test": 2}
SAMPLES_PER_EPOCH = 1_000_000  # loaders run this long at most; epochs really end at growth
_MASK64 = (1 << 64) - 1

__all__ = ["CelebADataModule", "DataError", "ShuffledPasses"]


def _mix(*values: int) -> int:
    """A 64-bit hash of integers (splitmix64 steps): seeds and per-draw coin flips."""
    h = 0x9E3779B97F4A7C15
    for v in values:
        h = (h ^ (v & _MASK64)) * 0xBF58476D1CE4E5B9 & _MASK64
        h = (h ^ (h >> 31)) * 0x94D049BB133111EB & _MASK64
        h ^= h >> 29
    return h


def worker_init(worker_id: int, *, rank: int) -> None:
    """A loader worker leaves SIGTERM/SIGUSR1 to the main process, which stops at a step boundary
    and shuts its workers down (they also exit when it dies): a cluster's SIGTERM to the process
    group no longer kills them mid-step. Then Lightning's worker seeding, as it would add it."""
    for name in ("SIGTERM", "SIGUSR1"):
        if hasattr(signal, name):  # SIGUSR1 is POSIX only
            signal.signal(getattr(signal, name), signal.SIG_IGN)
    if os.environ.get("PL_SEED_WORKERS") == "1":
        pl_worker_init_function(worker_id, rank=rank)


def _read_table(path: Path) -> list[list[str]]:
    return [line.split() for line in path.read_text().splitlines() if line.strip()]


class _ImagesAtResolution(Dataset):
    """uint8 [3, R, R] images of one cache array, optionally mirrored; opened lazily per worker.

    Index ``i`` is a draw: image ``i % len(indices)``, pass ``i // len(indices)``, so the dataset's
    length covers ``passes`` passes. Whether draw ``i`` is mirrored is a hash of (``flip_seed``,
    ``i``): independent across draws, identical in any worker process.
    """

    def __init__(
        self,
        path: Path,
        indices: np.ndarray,
        hflip_p: float,
        *,
        passes: int = 1,
        flip_seed: int = 0,
    ) -> None:
        self.path = path
        self.indices = indices
        self.hflip_p = hflip_p
        self.passes = passes
        self.flip_seed = flip_seed
        self._array: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.indices) * self.passes

    def flipped(self, i: int) -> bool:
        return _mix(self.flip_seed, i) < self.hflip_p * 2.0**64

    def __getitem__(self, i: int) -> Tensor:
        if self._array is None:  # a memmap per process; never pickled to workers
            self._array = np.load(self.path, mmap_mode="r")
        image = torch.from_numpy(np.array(self._array[self.indices[i % len(self.indices)]]))
        if self.hflip_p > 0 and self.flipped(i):
            image = image.flip(-1)
        return image

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_array": None}


class ShuffledPasses(DistributedSampler):
    """Many reshuffled passes over ``size`` items, this process's share of each under DDP.

    Training decides when a loader ends (at the next resolution change), so the loader must not
    run out first. Pass ``p`` is a permutation seeded by (``seed``, epoch, ``p``), split evenly by
    rank (``size // world`` each; the remainder sits the pass out), and yields draw indices
    ``p * size + image`` for :class:`_ImagesAtResolution`. Lazy: one permutation at a time.
    A ``DistributedSampler`` so that Lightning neither replaces nor wraps it; ``set_epoch`` (called
    by Lightning every epoch) reshuffles. ``start`` skips that many draws of the epoch (a resumed
    run's position): the rest of the stream is exactly what an uninterrupted loader would yield.
    """

    def __init__(
        self, size: int, *, passes: int, seed: int, rank: int = 0, world: int = 1, start: int = 0
    ):
        if size < world:
            raise DataError(f"{size} images cannot be split over {world} processes")
        # DistributedSampler's own __init__ would need torch.distributed; set its fields here.
        self.size, self.passes, self.seed, self.rank, self.world = size, passes, seed, rank, world
        self.num_replicas, self.shuffle, self.drop_last, self.epoch = world, True, True, 0
        self.per_pass = size // world
        self.start = min(max(0, start), self.per_pass * passes)
        self.num_samples = self.total_size = self.per_pass * passes - self.start

    def __len__(self) -> int:
        return self.per_pass * self.passes - self.start

    def __iter__(self) -> Iterator[int]:
        first_pass, offset = divmod(self.start, self.per_pass)
        for index in range(first_pass, self.passes):
            generator = torch.Generator().manual_seed(_mix(self.seed, self.epoch, index) >> 1)
            order = torch.randperm(self.size, generator=generator)
            mine = order[self.rank :: self.world][: self.per_pass]
            yield from (mine + index * self.size)[offset if index == first_pass else 0 :].tolist()


class CelebADataModule(L.LightningDataModule):
    """CelebA (or any image folder) prepared once per resolution, served at the current stage."""

    def __init__(
        self,
        *,
        root: str,  # CelebA folder (img_align_celeba/, list_*.txt) or, with layout=folder, any
        layout: str = "celeba",  # "celeba" (official layout) | "folder" (images found recursively)
        split: str = "train",  # train | valid | test | all; ignored without list_eval_partition
        exclude_attributes: Sequence[str] = (),  # drop images with any of these (e.g. Eyeglasses)
        require_attributes: Sequence[str] = (),  # keep only images with all of these
        crop_size: float = 0.72,  # square crop side as a fraction of the image width
        crop_center_y: float = 0.555,  # crop centre as a fraction of the image height
        hflip_p: float = 0.5,  # probability of a horizontal flip per image
        resolutions: Sequence[int] | None = None,  # all resolutions the run uses (set by train.py)
        cache_dir: str = ".cache/data",  # where prepared images go
        num_workers: int = 2,  # loader processes, and threads while preparing
        limit: int | None = None,  # only the first N selected images (quick runs, tests)
        holdout: int = 0,  # the last N selected images are held out of training (for FID)
        subset: str = "train",  # "train": all but the held-out | "holdout": only the held-out
        seed: int = 0,  # shuffling and flips (with the epoch)
    ) -> None:
        """``split`` needs ``root/list_eval_partition.txt`` (CelebA layout): without that file, or
        with ``layout="folder"``, it is ignored and every image is used. Attribute filters need
        ``root/list_attr_celeba.txt``. Filters apply in the order split, attributes, holdout,
        ``limit``: ``holdout=1000`` trains on all but the last 1000 images, and the same config
        with ``subset="holdout"`` (``fid.py``) selects exactly those 1000, so FID measures faces
        the run never saw."""
        super().__init__()
        if layout not in ("celeba", "folder"):
            raise ConfigError(f"data.layout must be celeba or folder, got {layout!r}")
        if split not in (*SPLITS, "all"):
            raise ConfigError(f"data.split must be train, valid, test or all, got {split!r}")
        if not 0 < crop_size <= 1 or not 0 < crop_center_y < 1:
            raise ConfigError("data.crop_size must be in (0, 1] and data.crop_center_y in (0, 1)")
        if not 0 <= hflip_p <= 1:
            raise ConfigError(f"data.hflip_p must be in [0, 1], got {hflip_p}")
        if holdout < 0 or subset not in ("train", "holdout"):
            raise ConfigError(
                f"data.holdout must be >= 0 and data.subset train or holdout, got {holdout}, "
                f"{subset!r}"
            )
        if subset == "holdout" and holdout == 0:
            raise ConfigError("data.subset=holdout needs data.holdout=N (the images held out)")
        if limit is not None and limit < 1:
            raise ConfigError(
                f"data.limit must be a positive number of images or null, got {limit}"
            )
        self.root = Path(root).expanduser()
        self.layout = layout
        self.split = split
        self.exclude_attributes = list(exclude_attributes)
        self.require_attributes = list(require_attributes)
        self.crop = Crop(size=crop_size, center_y=crop_center_y)
        self.hflip_p = hflip_p
        self.resolutions = sorted(set(resolutions or []))
        self.cache_dir = Path(cache_dir)
        self.num_workers = num_workers
        self.limit = limit
        self.holdout = holdout
        self.subset = subset
        self.seed = seed
        self.resolution: int | None = None  # what train_dataloader() serves next
        self.batch_size: int | None = None  # per device
        self._prepared: PreparedImages | None = None
        self._resume: tuple[int, int] | None = None  # (epoch, batches already trained in it)

    # ------------------------------------------------------------------ selecting images
    @property
    def image_dir(self) -> Path:
        return self.root / "img_align_celeba" if self.layout == "celeba" else self.root

    def _fix_hint(self) -> str:
        if self.layout == "celeba":
            return "expected CelebA's img_align_celeba/*.jpg; set data.root=PATH, or data=folder"
        return "expected image files (jpg, png, webp) in it or below; set data.root=PATH"

    def select_files(self) -> list[str]:
        """Relative paths (to :attr:`image_dir`) of the images this configuration uses, sorted."""
        folder = self.image_dir
        if not folder.is_dir():
            raise DataError(f"data folder not found: {folder} ({self._fix_hint()})")
        if self.layout == "celeba":
            files = sorted(p.name for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        else:
            files = sorted(
                str(p.relative_to(folder))
                for p in folder.rglob("*")
                if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
            )
        if not files:
            raise DataError(f"no images found in {folder} ({self._fix_hint()})")
        files = self._filter_split(files)
        files = self._filter_attributes(files)
        if not files:
            raise DataError(
                f"no images in {folder} are left after data.split={self.split} and the attribute "
                "filters; relax data.exclude_attributes / data.require_attributes"
            )
        files = self._filter_holdout(files)
        return files[: self.limit] if self.limit else files

    def _filter_holdout(self, files: list[str]) -> list[str]:
        if not self.holdout:
            return files
        if self.holdout >= len(files):
            raise DataError(
                f"data.holdout={self.holdout} leaves no training images of the {len(files)} "
                "selected; lower it"
            )
        return files[-self.holdout :] if self.subset == "holdout" else files[: -self.holdout]

    def _filter_split(self, files: list[str]) -> list[str]:
        partition = self.root / "list_eval_partition.txt"
        if self.layout != "celeba" or self.split == "all" or not partition.is_file():
            return files  # no partition file (or not CelebA): every image is used, as documented
        wanted = str(SPLITS[self.split])
        chosen = {row[0] for row in _read_table(partition) if len(row) >= 2 and row[1] == wanted}
        return [f for f in files if f in chosen]

    def _filter_attributes(self, files: list[str]) -> list[str]:
        if not self.exclude_attributes and not self.require_attributes:
            return files
        attr_file = self.root / "list_attr_celeba.txt"
        if self.layout != "celeba" or not attr_file.is_file():
            raise ConfigError(
                f"attribute filters need {attr_file}; remove data.exclude_attributes / "
                "data.require_attributes or use the CelebA layout"
            )
        rows = _read_table(attr_file)
        names = rows[1]
        for name in (*self.exclude_attributes, *self.require_attributes):
            if name not in names:
                raise ConfigError(f"unknown CelebA attribute {name!r}; valid: {', '.join(names)}")
        exclude = [names.index(n) + 1 for n in self.exclude_attributes]
        require = [names.index(n) + 1 for n in self.require_attributes]
        keep = {
            row[0]
            for row in rows[2:]
            if all(row[i] != "1" for i in exclude) and all(row[i] == "1" for i in require)
        }
        return [f for f in files if f in keep]

    # ------------------------------------------------------------------ preparing
    def _prepare(self, resolutions: Sequence[int]) -> PreparedImages:
        return build_cache(
            self.select_files(),
            root=self.image_dir,
            resolutions=resolutions,
            crop=self.crop,
            cache_dir=self.cache_dir,
            num_workers=self.num_workers,
        )

    def prepare_data(self) -> None:
        """Build the cache for every resolution of the run (local rank 0 only, under DDP)."""
        if not self.resolutions:
            raise ConfigError("data.resolutions is empty: train.py fills it from the stage")
        self._prepare(self.resolutions)

    def setup(self, stage: str | None = None) -> None:
        self._prepared = self._prepare(self.resolutions)  # a cache hit after prepare_data

    def held_out(self) -> "CelebADataModule | None":
        """The held-out images (``holdout`` > 0) as a data module of their own, for FID against
        faces the run never trained on; None without a holdout."""
        if not self.holdout or self.subset == "holdout":
            return None
        other = copy.copy(self)
        other.subset = "holdout"
        other._prepared = None
        return other

    @property
    def prepared(self) -> PreparedImages:
        if self._prepared is None:
            self.setup()
        return self._prepared

    @property
    def fingerprint(self) -> str:
        """Identifies the prepared images for an FID real-statistics key: the cache key, a hash of
        the selected files (so the split, attribute filters and ``limit``) with their sizes and
        mtimes, the crop and the resize method. Flips are not part of it (reals are unflipped)."""
        return self.prepared.key

    def __len__(self) -> int:
        return len(self.prepared)

    # ------------------------------------------------------------------ serving
    def set_stage(self, resolution: int, batch_size: int) -> None:
        """What the next :meth:`train_dataloader` serves: resolution and per-device batch size."""
        if resolution not in self.resolutions:
            raise ConfigError(f"{resolution}px is not among data.resolutions {self.resolutions}")
        self.resolution, self.batch_size = resolution, batch_size

    def resume_at(self, *, epoch: int, batches: int) -> None:
        """The next loader of ``epoch`` starts after the ``batches`` a resumed run already trained
        on (set from the checkpoint by :class:`~stylegan.callbacks.ExactResume`)."""
        self._resume = (epoch, batches)

    def train_dataloader(self) -> DataLoader:
        if self.resolution is None or self.batch_size is None:
            raise ConfigError("call set_stage(resolution, batch_size) before train_dataloader()")
        prepared = self.prepared
        if len(prepared) < self.batch_size:
            raise DataError(
                f"only {len(prepared)} images for a batch of {self.batch_size}; "
                "use more images (data.limit) or a smaller stage.batch_size"
            )
        trainer = self.trainer
        rank, world = (trainer.global_rank, trainer.world_size) if trainer else (0, 1)
        epoch = trainer.current_epoch if trainer else 0
        passes = max(1, math.ceil(SAMPLES_PER_EPOCH / len(prepared)))
        dataset = _ImagesAtResolution(
            prepared.path(self.resolution),
            np.arange(len(prepared)),
            self.hflip_p,
            passes=passes,
            flip_seed=_mix(self.seed, epoch, 1),
        )
        start = 0
        if self._resume is not None and self._resume[0] == epoch:
            start = self._resume[1] * self.batch_size  # draws trained on before the checkpoint
            self._resume = None
        sampler = ShuffledPasses(
            len(prepared), passes=passes, seed=self.seed, rank=rank, world=world, start=start
        )
        sampler.set_epoch(epoch)
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            sampler=sampler,
            drop_last=True,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            worker_init_fn=functools.partial(worker_init, rank=rank) if self.num_workers else None,
            pin_memory=torch.cuda.is_available(),
        )

    def on_after_batch_transfer(self, batch: Tensor, dataloader_idx: int) -> Tensor:
        return batch.float() / 127.5 - 1.0  # uint8 -> [-1, 1] on the device

    def real_batches(
        self, resolution: int, count: int, batch_size: int, seed: int = 0
    ) -> Iterator[Tensor]:
        """A fixed subset of ``min(count, len(self))`` real images, unflipped, uint8 [B, 3, R, R].

        The subset depends only on the prepared images (:attr:`fingerprint`), ``count`` and
        ``seed`` -- not on the training seed -- so FID statistics keyed by fingerprint, resolution
        and count stay valid. A resolution outside ``resolutions`` is prepared on demand.
        """
        prepared = self.prepared
        if not prepared.has(resolution):
            self._prepared = prepared = self._prepare([*self.resolutions, resolution])
        array = prepared.array(resolution)
        order = np.random.default_rng(seed).permutation(len(prepared))[:count]
        for start in range(0, len(order), batch_size):
            chunk = np.sort(order[start : start + batch_size])  # sorted reads from the memmap
            yield torch.from_numpy(np.array(array[chunk]))
