"""The CelebA LightningDataModule: which images, how they are prepared, how batches are served.

It selects images (CelebA's official layout with its split and attribute files, or any image
folder), has :mod:`stylegan.data.cache` prepare them once per resolution, and serves uint8
batches at whatever resolution and batch size the progressive callback asks for through
:meth:`CelebADataModule.set_stage`. Batches become floats in [-1, 1] on the device
(``on_after_batch_transfer``), so workers only copy bytes. Horizontal flips happen in the dataset.
"""

import math
from collections.abc import Iterator, Sequence
from pathlib import Path

import lightning as L
import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Sampler

from stylegan.data.cache import Crop, PreparedImages, build_cache
from stylegan.errors import ConfigError, UserError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp"}
SPLITS = {"train": 0, "valid": 1, "test": 2}
SAMPLES_PER_EPOCH = 1_000_000  # loaders run this long at most; epochs really end at growth


class DataError(UserError, FileNotFoundError):
    """The data folder is missing, empty, or not in the expected layout."""


def _read_table(path: Path) -> list[list[str]]:
    return [line.split() for line in path.read_text().splitlines() if line.strip()]


class _ImagesAtResolution(Dataset):
    """uint8 [3, R, R] images of one cache array, optionally mirrored; opened lazily per worker."""

    def __init__(self, path: Path, indices: np.ndarray, hflip_p: float) -> None:
        self.path = path
        self.indices = indices
        self.hflip_p = hflip_p
        self._array: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> Tensor:
        if self._array is None:  # a memmap per process; never pickled to workers
            self._array = np.load(self.path, mmap_mode="r")
        image = torch.from_numpy(np.array(self._array[self.indices[i]]))
        if self.hflip_p > 0 and torch.rand(()) < self.hflip_p:
            image = image.flip(-1)
        return image

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_array": None}


class ShuffledPasses(Sampler[int]):
    """Many reshuffled passes over ``size`` items, this process's share of each under DDP.

    Training decides when a loader ends (at the next resolution change), so the loader must not
    run out first; every pass is a new permutation seeded by ``seed``, split evenly by rank.
    """

    def __init__(self, size: int, *, passes: int, seed: int, rank: int = 0, world: int = 1):
        self.size, self.passes, self.seed, self.rank, self.world = size, passes, seed, rank, world
        self.per_pass = size // world

    def __len__(self) -> int:
        return self.per_pass * self.passes

    def __iter__(self) -> Iterator[int]:
        for index in range(self.passes):
            generator = torch.Generator().manual_seed(self.seed * 1_000_003 + index)
            order = torch.randperm(self.size, generator=generator)
            yield from order[self.rank :: self.world][: self.per_pass].tolist()


class CelebADataModule(L.LightningDataModule):
    """CelebA (or any image folder) prepared once per resolution, served at the current stage."""

    def __init__(
        self,
        *,
        root: str,  # CelebA folder (img_align_celeba/, list_*.txt) or, with layout=folder, any
        layout: str = "celeba",  # "celeba" (official layout) | "folder" (images found recursively)
        split: str = "train",  # train | valid | test | all (needs list_eval_partition.txt)
        exclude_attributes: Sequence[str] = (),  # drop images with any of these (e.g. Eyeglasses)
        require_attributes: Sequence[str] = (),  # keep only images with all of these
        crop_size: float = 0.72,  # square crop side as a fraction of the image width
        crop_center_y: float = 0.555,  # crop centre as a fraction of the image height
        hflip_p: float = 0.5,  # probability of a horizontal flip per image
        resolutions: Sequence[int] | None = None,  # all resolutions the run uses (set by train.py)
        cache_dir: str = ".cache/data",  # where prepared images go
        num_workers: int = 2,  # loader processes, and threads while preparing
        limit: int | None = None,  # only the first N selected images (quick runs, tests)
        seed: int = 0,  # shuffling and the real-image subset for FID
    ) -> None:
        super().__init__()
        if layout not in ("celeba", "folder"):
            raise ConfigError(f"data.layout must be celeba or folder, got {layout!r}")
        if split not in (*SPLITS, "all"):
            raise ConfigError(f"data.split must be train, valid, test or all, got {split!r}")
        if not 0 < crop_size <= 1 or not 0 < crop_center_y < 1:
            raise ConfigError("data.crop_size must be in (0, 1] and data.crop_center_y in (0, 1)")
        if not 0 <= hflip_p <= 1:
            raise ConfigError(f"data.hflip_p must be in [0, 1], got {hflip_p}")
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
        self.seed = seed
        self.resolution: int | None = None  # what train_dataloader() serves next
        self.batch_size: int | None = None  # per device
        self._prepared: PreparedImages | None = None
        self._loaders_built = 0

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
        return files[: self.limit] if self.limit else files

    def _filter_split(self, files: list[str]) -> list[str]:
        partition = self.root / "list_eval_partition.txt"
        if self.layout != "celeba" or self.split == "all" or not partition.is_file():
            return files  # no partition file: every image is used
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

    @property
    def prepared(self) -> PreparedImages:
        if self._prepared is None:
            self.setup()
        return self._prepared

    @property
    def fingerprint(self) -> str:
        """Identifies the prepared images (source files, crop, filters): a cache key for FID."""
        return self.prepared.key

    def __len__(self) -> int:
        return len(self.prepared)

    # ------------------------------------------------------------------ serving
    def set_stage(self, resolution: int, batch_size: int) -> None:
        """What the next :meth:`train_dataloader` serves: resolution and per-device batch size."""
        if resolution not in self.resolutions:
            raise ConfigError(f"{resolution}px is not among data.resolutions {self.resolutions}")
        self.resolution, self.batch_size = resolution, batch_size

    def train_dataloader(self) -> DataLoader:
        if self.resolution is None or self.batch_size is None:
            raise ConfigError("call set_stage(resolution, batch_size) before train_dataloader()")
        prepared = self.prepared
        if len(prepared) < self.batch_size:
            raise DataError(
                f"only {len(prepared)} images for a batch of {self.batch_size}; "
                "use more images (data.limit) or a smaller stage.batch_size"
            )
        dataset = _ImagesAtResolution(
            prepared.path(self.resolution), np.arange(len(prepared)), self.hflip_p
        )
        self._loaders_built += 1
        trainer = self.trainer
        rank, world = (trainer.global_rank, trainer.world_size) if trainer else (0, 1)
        sampler = ShuffledPasses(
            len(dataset),
            passes=max(1, math.ceil(SAMPLES_PER_EPOCH / len(dataset))),
            seed=self.seed * 7919 + self._loaders_built,
            rank=rank,
            world=world,
        )
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            sampler=sampler,
            drop_last=True,
            num_workers=self.num_workers,
            persistent_workers=False,
            pin_memory=torch.cuda.is_available(),
        )

    def on_after_batch_transfer(self, batch: Tensor, dataloader_idx: int) -> Tensor:
        return batch.float() / 127.5 - 1.0  # uint8 -> [-1, 1] on the device

    def real_batches(self, resolution: int, count: int, batch_size: int) -> Iterator[Tensor]:
        """A fixed (seeded) subset of ``count`` real images, unflipped, uint8 [B, 3, R, R]."""
        prepared = self.prepared
        if not prepared.has(resolution):
            self._prepared = prepared = self._prepare([*self.resolutions, resolution])
        array = prepared.array(resolution)
        order = np.random.default_rng(self.seed).permutation(len(prepared))[:count]
        for start in range(0, len(order), batch_size):
            chunk = np.sort(order[start : start + batch_size])  # sorted reads from the memmap
            yield torch.from_numpy(np.array(array[chunk]))
