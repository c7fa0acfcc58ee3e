"""Benchmark FID feature extraction: seconds per 100 images for a feature network on this machine.

    python benchmarks/bench_fid.py [--network tf-inception-offline] [--resolution 64]
                                   [--batch-size 25] [--images 100] [--device cpu] [--plain]

``--plain`` times the TorchScript module as fid-helper ships it; the default is the folded graph
(:mod:`stylegan.metrics.inception`). Run both back to back for the speed-up.

Times the feature network on random uint8 images (resize to 299×299 included) after one warm-up
batch, and the Fréchet distance (torchmetrics' formula) between two sets of statistics.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from stylegan.metrics.fid import (
    FeatureStats,
    frechet_distance,
    load_feature_network,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--network", default="tf-inception-offline")
    parser.add_argument("--resolution", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=25)
    parser.add_argument("--images", type=int, default=100)
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--plain", action="store_true", help="the TorchScript module as shipped (not folded)"
    )
    args = parser.parse_args()
    warnings.filterwarnings("ignore", category=FutureWarning)  # torch.jit deprecation notices

    device = torch.device(args.device)
    net = load_feature_network(args.network, device=device, fast=not args.plain)
    gen = torch.Generator().manual_seed(0)

    def batch(n: int) -> torch.Tensor:
        size = (n, 3, args.resolution, args.resolution)
        return torch.randint(0, 256, size, generator=gen, dtype=torch.uint8).to(device)

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    with torch.no_grad():
        net(batch(args.batch_size))  # warm-up (TorchScript profiling runs, allocator)
        sync()
        done, feats = 0, []
        start = time.perf_counter()
        while done < args.images:
            n = min(args.batch_size, args.images - done)
            feats.append(net(batch(n)))
            done += n
        sync()
        elapsed = time.perf_counter() - start

    per_100 = elapsed / args.images * 100
    print(
        f"{args.network}{' (plain TorchScript)' if args.plain else ''}: "
        f"{per_100:.2f} s per 100 images, {args.images / elapsed:.1f} img/s "
        f"({args.images} images at {args.resolution}px, batch {args.batch_size}, "
        f"{args.device}, {torch.get_num_threads()} threads)"
    )

    f = torch.cat(feats).double().cpu()
    d = f.shape[1]
    stats = FeatureStats(f.mean(0), torch.cov(f.T) + torch.eye(d, dtype=torch.float64), len(f))
    start = time.perf_counter()
    frechet_distance(stats, stats)
    print(f"Fréchet distance ({d}-d statistics): {time.perf_counter() - start:.2f} s")


if __name__ == "__main__":
    main()
