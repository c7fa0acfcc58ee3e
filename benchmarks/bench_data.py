"""Data throughput: preparing the cache (images/s) and serving batches (images/s, batches/s).

    python benchmarks/bench_data.py [--root ../shared/celeba] [--workers 2]

Prints figures; asserts nothing. A GPU step at 64px takes a few ms, so the loader must serve
well over ~10k images/s at 64px for data loading never to be the limit.
"""

import argparse
import tempfile
import time
from pathlib import Path

import torch

from stylegan.data import CelebADataModule

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default=str(ROOT.parent / "shared" / "celeba"))
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batches", type=int, default=200)
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch CPU threads for the uint8->float step (stands in for the GPU's); more than "
        "one on a busy 2-core machine makes OpenMP spin and measures contention, not loading",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    resolutions = [8, 16, 32, 64, 128]
    with tempfile.TemporaryDirectory() as cache:
        dm = CelebADataModule(
            root=args.root, resolutions=resolutions, cache_dir=cache, num_workers=args.workers
        )
        start = time.perf_counter()
        dm.prepare_data()
        built = time.perf_counter() - start
        print(
            f"cache build: {len(dm)} images x {resolutions}px in {built:.1f} s "
            f"= {len(dm) / built:.0f} images/s (one decode per image)"
        )
        start = time.perf_counter()
        dm.setup("fit")
        print(f"cache hit (setup): {time.perf_counter() - start:.3f} s")
        for resolution, batch_size in ((8, 128), (32, 64), (64, 32), (128, 16)):
            dm.set_stage(resolution, batch_size)
            batches = iter(dm.train_dataloader())
            next(batches)  # worker start-up
            start = time.perf_counter()
            for _ in range(args.batches):
                batch = next(batches)
                dm.on_after_batch_transfer(batch, 0)
            elapsed = time.perf_counter() - start
            rate = args.batches * batch_size / elapsed
            print(
                f"loader {resolution:>4}px batch {batch_size:>3}: {rate:>9.0f} images/s "
                f"= {args.batches / elapsed:>7.1f} batches/s"
            )


if __name__ == "__main__":
    main()
