"""FID at a high resolution of images made at a lower one and upsampled: what growing pays.

    python benchmarks/fid_upsampled.py --ckpt RUN/checkpoints/kimg000105.376.ckpt --render 32
    python benchmarks/fid_upsampled.py --real 32          # real training faces at 32 px, upsampled
    python benchmarks/fid_upsampled.py --ckpt RUN/checkpoints/last.ckpt --render 64

Scores ``--num`` images against ``--num`` held-out faces at ``--resolution`` (64), the way
``fid.py ... data.holdout=1000 data.subset=holdout`` does, after a bilinear upsampling of the
images to that resolution. ``--render R`` draws the generator's R-px output (any resolution it
has grown to: the end of a 32-px phase, or the 32-px path of a 64-px generator); ``--real R``
scores real *training* faces prepared at R px instead: the best any R-px generator can score at
``--resolution`` (at R = ``--resolution`` it is fid.py's real-vs-real floor). Asserts nothing.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from stylegan.checkpoints import load_generator  # noqa: E402
from stylegan.metrics import feature_statistics, frechet_distance, load_feature_network  # noqa: E402
from stylegan.metrics.suite import MetricChoice, evaluate_generator  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--ckpt", help="a checkpoint or generator.pt (with --render)")
    source.add_argument("--real", type=int, help="real training faces prepared at this px")
    parser.add_argument("--render", type=int, default=None, help="px to draw G at")
    parser.add_argument("--resolution", type=int, default=64, help="px FID is measured at")
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "celeba"))
    parser.add_argument("--holdout", type=int, default=1000)
    parser.add_argument("--num", type=int, default=1000, help="images on each side")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    res = args.resolution
    overrides = [f"data.root={args.data}", f"data.holdout={args.holdout}",
                 "data.subset=holdout", "metrics=fid", f"paths.root_dir={ROOT}",
                 "paths.output_dir=unused", "ckpt=unused"]  # fmt: skip
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("fid", overrides=overrides)
    net = load_feature_network(cfg.feature_network, weights_path=None, device="cpu")

    def upsample(images: torch.Tensor) -> torch.Tensor:
        if images.shape[-1] == res:
            return images.float()
        return F.interpolate(images.float(), size=(res, res), mode="bilinear", align_corners=False)

    held_out = instantiate(cfg.data, resolutions=[res])
    held_out.prepare_data()
    held_out.setup("fit")
    if args.ckpt:
        G, info = load_generator(args.ckpt)
        render = args.render or int(info["resolution"])
        trained = f"trained to {info['resolution']} px, {info['images_seen']} images"
        what = f"{args.ckpt} ({trained}) at {render} px"
        gen = torch.Generator().manual_seed(args.seed)
        torch.manual_seed(args.seed)  # the noise inputs

        @torch.no_grad()
        def generate(n: int) -> torch.Tensor:
            z = torch.randn(n, G.z_dim, generator=gen)
            return upsample(G(z, resolution=render, truncation_psi=1.0, noise_mode="random"))

        result, _ = evaluate_generator(
            generate, held_out, resolution=res, choice=MetricChoice.from_config(cfg.metrics),
            num_images=args.num, num_real=args.num, feature_name=cfg.feature_network,
            feature_net=net, cache_dir=cfg.paths.fid_cache_dir, batch_size=8,
        )  # fmt: skip
        fid = result["fid"]
    else:
        what = f"real training faces at {args.real} px"
        training = instantiate(cfg.data, resolutions=[args.real], subset="train")
        training.prepare_data()
        training.setup("fit")
        batches = training.real_batches(args.real, args.num, 8)  # uint8
        upsampled = (upsample(b).round().clamp(0, 255).to(torch.uint8) for b in batches)
        fake = feature_statistics(upsampled, net, limit=args.num)
        real = feature_statistics(held_out.real_batches(res, args.num, 8), net, limit=args.num)
        fid = frechet_distance(fake, real)
    print(f"FID at {res} px, {args.num} vs {args.num} held-out: {fid:.2f}  ({what}, upsampled)")


if __name__ == "__main__":
    main()
