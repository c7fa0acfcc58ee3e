"""Which distance to project with: PSNR, cross-distances, attribute agreement and time per face.

    nice -n 15 python benchmarks/bench_projection.py --ckpt .../last.ckpt --data ../shared/celeba \
        --holdout 1000 --n 100 --classifier .../classifier.pt [--steps 1000] [--threads 2]

Projects the first ``--n`` of the ``--holdout`` faces a run held out of training (the
``data.holdout`` / ``data.subset=holdout`` selection of :class:`~stylegan.data.CelebADataModule`,
so the generator never saw them) with every ``--distances`` x ``--modes`` pair and prints one
Markdown table row per pair:

- PSNR (dB, mean over faces) of projection vs target;
- every distance of ``--evaluate`` between projection and target (mean); the one the run was
  optimised with is starred, so a choice is judged by the distances it was *not* optimised with;
- attribute agreement: the share of the classifier's attributes on which the target and its
  projection fall on the same side of 0.5 (mean over faces; needs ``--classifier``);
- seconds per face (wall clock of a batch of ``--batch`` faces projected side by side, divided
  by its size; meaningless on a loaded machine).

Asserts nothing. A smoke check: ``--n 2 --steps 5``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from stylegan import projection as P
from stylegan.attributes.classifier import load_classifier
from stylegan.checkpoints import load_generator
from stylegan.data import CelebADataModule
from stylegan.imaging import save_grid


def held_out_faces(data: str, holdout: int, n: int, split: str) -> tuple[list[Path], object]:
    """The first ``n`` held-out image paths and the data module's crop."""
    dm = CelebADataModule(root=data, split=split, holdout=holdout, subset="holdout")
    return [dm.image_dir / f for f in dm.select_files()[:n]], dm.crop


@torch.no_grad()
def agreement(classifier, a: torch.Tensor, b: torch.Tensor) -> float:
    """Share of attributes on which the classifier puts ``a`` and ``b`` on the same side."""
    pa, pb = torch.sigmoid(classifier(a[None])), torch.sigmoid(classifier(b[None]))
    return float(((pa >= 0.5) == (pb >= 0.5)).float().mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ckpt", required=True, help="last.ckpt (needed for discriminator)")
    parser.add_argument("--data", required=True, help="CelebA root")
    parser.add_argument("--split", default="train")
    parser.add_argument("--holdout", type=int, default=1000, help="the run's data.holdout")
    parser.add_argument("--n", type=int, default=100, help="faces to project")
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--modes", nargs="+", default=["w", "w_plus"])
    parser.add_argument(
        "--distances", nargs="+", default=["pixels", "inception", "discriminator", "classifier"]
    )
    parser.add_argument("--evaluate", nargs="+", default=None, help="default: --distances")
    parser.add_argument("--classifier", default=None, help="classifier.pt at G's resolution")
    parser.add_argument("--lpips-weights", default=None, help="vgg16-397923af.pth (lpips)")
    parser.add_argument("--w-avg-samples", type=int, default=10000)
    parser.add_argument("--batch", type=int, default=25, help="faces projected side by side")
    parser.add_argument("--save", default=None, help="a PNG: target | projection of each run")
    parser.add_argument("--save-columns", type=int, default=8, help="pairs per row of --save")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    G, info = load_generator(args.ckpt, device=args.device)
    res = int(info["resolution"])
    paths, crop = held_out_faces(args.data, args.holdout, args.n, args.split)
    targets = [P.load_target_image(p, res, crop=crop) for p in paths]
    common = dict(resolution=res, device=args.device, ckpt=args.ckpt, classifier=args.classifier,
                  lpips_weights=args.lpips_weights)  # fmt: skip
    evaluate = args.evaluate or args.distances
    judges = {name: P.build_distance(name, **common) for name in evaluate}
    classifier = None
    if args.classifier:
        classifier, _ = load_classifier(args.classifier, resolution=res, device=args.device)
    schedule = P.Schedule(w_avg_samples=args.w_avg_samples)
    fingerprint = P.generator_fingerprint(G)
    print(f"{len(paths)} held-out faces at {res}px, {args.steps} steps, {args.ckpt}")
    header = ["distance", "mode", "PSNR dB", *evaluate, "attr. agreement", "s/face"]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    pairs: list[torch.Tensor] = []
    for name in args.distances:
        distance = P.build_distance(name, **common)
        for mode in args.modes:
            psnrs, agree, seconds = [], [], []
            judged: dict[str, list[float]] = {j: [] for j in evaluate}
            for first in range(0, len(targets), args.batch):
                batch = torch.stack(targets[first : first + args.batch])
                start = time.perf_counter()
                results = P.project_batch(
                    G, batch, mode=mode, steps=args.steps, distance=distance,
                    schedule=schedule, fingerprint=fingerprint,
                )  # fmt: skip
                seconds.append((time.perf_counter() - start) / len(batch))
                for target, result in zip(batch, results, strict=True):
                    psnrs.append(result.psnr)
                    t, p = target[None].to(args.device), result.image[None].to(args.device)
                    with torch.no_grad():
                        for j, judge in judges.items():
                            judged[j].append(float(judge(p, judge.prepare(t)).sum()))
                    if classifier is not None:
                        agree.append(agreement(classifier, t[0], p[0]))
                    if args.save:
                        pairs.append(torch.stack([target, result.image]))
            cells = [
                name, mode, f"{sum(psnrs) / len(psnrs):.2f}",
                *(f"{sum(v) / len(v):.4f}" + ("*" if j == name else "") for j, v in judged.items()),
                f"{sum(agree) / len(agree):.1%}" if agree else "-",
                f"{sum(seconds) / len(seconds):.1f}",
            ]  # fmt: skip
            print("| " + " | ".join(cells) + " |", flush=True)
    if args.save and pairs:
        # rows: one per face and run, target | projection, the runs in table order
        save_grid(torch.cat(pairs).clamp(-1, 1), args.save, nrow=2 * args.save_columns)


if __name__ == "__main__":
    main()
