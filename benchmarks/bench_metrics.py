"""Cost of each metric on this machine, measured with small counts and extrapolated.

    nice -n 15 python benchmarks/bench_metrics.py [--threads 1] [--resolution 64]

Prints seconds per unit and the extrapolated cost at the counts the configs use; asserts
nothing. Feature extraction (TF-Inception, per image) is what FID already pays; KID and
precision/recall reuse those features, so their cost is the kernel/distance arithmetic alone
(KID: subsets × m² kernel sums; precision/recall: (n + m)² distances, quadratic in the count).
PPL pays the generator (2 images per pair) plus LPIPS-VGG16 on the face crop; the VGG weights
here are random (same cost as the real ones, no download).
"""

import argparse
import time

import torch

from stylegan.metrics import load_feature_network
from stylegan.metrics.kid import kernel_inception_distance
from stylegan.metrics.ppl import perceptual_path_length
from stylegan.metrics.precision_recall import precision_recall
from stylegan.networks import Generator


def timed(fn, repeat: int = 1) -> float:
    fn()  # warm-up
    start = time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - start) / repeat


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--resolution", type=int, default=64, help="generator for PPL")
    parser.add_argument("--images", type=int, default=10_000, help="count to extrapolate to")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    n = args.images

    net = load_feature_network("tf-inception-offline")
    x = torch.randint(0, 256, (16, 3, 64, 64), dtype=torch.uint8)
    with torch.no_grad():
        per_image = timed(lambda: net(x)) / 16
    print(
        f"TF-Inception features: {per_image * 1e3:.0f} ms/image -> "
        f"{n} images {per_image * n / 60:.1f} min"
    )

    g = torch.Generator().manual_seed(0)
    for m in (1000, 2000):
        real, fake = torch.randn(m, 2048, generator=g), torch.randn(m, 2048, generator=g)
        t = timed(lambda r=real, f=fake: kernel_inception_distance(r, f, subsets=10))
        print(f"KID, 10 subsets of {m}: {t:.2f} s -> 100 subsets of {m}: {t * 10:.1f} s")
    for m in (1000, 2000):
        real, fake = torch.randn(m, 2048, generator=g), torch.randn(m, 2048, generator=g)
        t = timed(lambda r=real, f=fake: precision_recall(r, f, k=3))
        print(
            f"precision/recall, {m} vs {m}: {t:.2f} s -> "
            f"{n} vs {n}: {t * (n / m) ** 2 / 60:.1f} min"
        )

    from torchmetrics.functional.image.lpips import _LPIPS

    lpips = _LPIPS(pretrained=True, net="vgg", pnet_rand=True).eval()

    def distance(a, b):
        return lpips(a, b).flatten()

    G = Generator(resolution=args.resolution).eval()  # paper widths
    with torch.no_grad():
        for space, sampling in (("z", "full"), ("w", "end")):
            t = timed(
                lambda s=space, p=sampling: perceptual_path_length(
                    G, distance, space=s, sampling=p, num_samples=16, batch_size=8
                )
            )
            print(
                f"PPL {space} {sampling} at {args.resolution}px (paper widths): "
                f"{t / 16 * 1e3:.0f} ms/pair -> {n} pairs {t / 16 * n / 60:.1f} min"
            )


if __name__ == "__main__":
    main()
