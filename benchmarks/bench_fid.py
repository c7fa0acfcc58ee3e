"""Benchmark FID feature extraction: seconds per 100 images for a feature network on this machine.

    python benchmarks/bench_fid.py [--network tf-inception-offline] [--resolution 64]
                                   [--batch-size N] [--images 100] [--device cpu] [--plain]
    python benchmarks/bench_fid.py --compare [--rounds 5]

``--plain`` times the TorchScript module as fid-helper ships it; the default is the folded graph
(:mod:`stylegan.metrics.inception`) at the default FID batch for the device. ``--compare`` times
the old default (shipped module, batch 64) and the new one (folded, default batch) interleaved,
round after round, and prints each one's median img/s and the ratio: one number that the noise
of a shared machine moves little.

Times the feature network on random uint8 images (resize to 299×299 included) after one warm-up
batch, and the Fréchet distance (torchmetrics' formula) between two sets of statistics.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from stylegan.metrics import (
    FeatureStats,
    feature_batch_size,
    frechet_distance,
    load_feature_network,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--network", default="tf-inception-offline")
    parser.add_argument("--resolution", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=None, help="default: fid.py's")
    parser.add_argument("--images", type=int, default=100)
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--plain", action="store_true", help="the TorchScript module as shipped (not folded)"
    )
    parser.add_argument(
        "--compare", action="store_true", help="old default vs new, interleaved (medians, ratio)"
    )
    parser.add_argument("--rounds", type=int, default=5, help="rounds of --compare")
    args = parser.parse_args()
    warnings.filterwarnings("ignore", category=FutureWarning)  # torch.jit deprecation notices

    device = torch.device(args.device)
    if args.compare:
        compare(args, device)
        return
    batch_size = feature_batch_size(args.batch_size, device)
    net = load_feature_network(args.network, device=device, fast=not args.plain)
    elapsed, feats = time_features(net, args.images, batch_size, args.resolution, device)

    per_100 = elapsed / args.images * 100
    print(
        f"{args.network}{' (plain TorchScript)' if args.plain else ''}: "
        f"{per_100:.2f} s per 100 images, {args.images / elapsed:.1f} img/s "
        f"({args.images} images at {args.resolution}px, batch {batch_size}, "
        f"{args.device}, {torch.get_num_threads()} threads)"
    )

    f = torch.cat(feats).double().cpu()
    d = f.shape[1]
    stats = FeatureStats(f.mean(0), torch.cov(f.T) + torch.eye(d, dtype=torch.float64), len(f))
    start = time.perf_counter()
    frechet_distance(stats, stats)
    print(f"Fréchet distance ({d}-d statistics): {time.perf_counter() - start:.2f} s")


def time_features(
    net: torch.nn.Module, images: int, batch_size: int, resolution: int, device: torch.device
) -> tuple[float, list[torch.Tensor]]:
    """Seconds to extract features of ``images`` random uint8 images, after one warm-up batch."""
    gen = torch.Generator().manual_seed(0)

    def batch(n: int) -> torch.Tensor:
        size = (n, 3, resolution, resolution)
        return torch.randint(0, 256, size, generator=gen, dtype=torch.uint8).to(device)

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    with torch.no_grad():
        net(batch(batch_size))  # warm-up (TorchScript profiling runs, allocator)
        sync()
        done, feats = 0, []
        start = time.perf_counter()
        while done < images:
            n = min(batch_size, images - done)
            feats.append(net(batch(n)))
            done += n
        sync()
    return time.perf_counter() - start, feats


def compare(args: argparse.Namespace, device: torch.device) -> None:
    """The old default and the new one, interleaved round by round; medians and their ratio."""
    configs = {
        "old default: shipped TorchScript, batch 64": (
            load_feature_network(args.network, device=device, fast=False),
            64,
        ),
        f"new default: folded graph, batch {feature_batch_size(None, device)}": (
            load_feature_network(args.network, device=device),
            feature_batch_size(None, device),
        ),
    }
    rates: dict[str, list[float]] = {name: [] for name in configs}
    images = max(args.images, 128)
    for _ in range(args.rounds):
        for name, (net, batch_size) in configs.items():
            elapsed, _ = time_features(net, images, batch_size, args.resolution, device)
            rates[name].append(images / elapsed)
    medians = {name: statistics.median(r) for name, r in rates.items()}
    for name, r in rates.items():
        runs = " ".join(f"{x:.1f}" for x in r)
        print(f"{name}: median {medians[name]:.1f} img/s (rounds: {runs})")
    old, new = medians.values()
    print(
        f"speed-up {new / old:.2f}x ({args.rounds} interleaved rounds of {images} images at "
        f"{args.resolution}px, {args.device}, {torch.get_num_threads()} threads)"
    )


if __name__ == "__main__":
    main()
