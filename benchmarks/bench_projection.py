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
- with ``--edit ATTRIBUTE --directions generator.pt``: each projection edited by ``--strength``
  standard deviations along the stored direction (as ``sample.py figure=edit`` does), and the
  classifier on it: the attribute's mean probability rise, the share of edited faces it calls
  present, and the mean probability change of the other attributes (what the edit drags along):
  how editable the W and W+ latents are;
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
from stylegan.attributes import edit_direction, load_directions, shift_ws
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


@torch.no_grad()
def edit_effect(classifier, G, result, direction: torch.Tensor, shift: float, res: int, a: int):
    """(rise of attribute ``a``'s probability, 1 if the edited face has it, mean |change| of the
    other attributes) when the projection's ws move by ``shift`` along ``direction``."""
    ws = result.ws[None]
    before = P.render_projection(G, ws, result.noise, res)
    render = P.render_projection(G, shift_ws(ws, direction, shift), result.noise, res)
    pb, pa = (torch.sigmoid(classifier(x.clamp(-1, 1)))[0] for x in (before, render))
    others = torch.ones_like(pb, dtype=torch.bool)
    others[a] = False
    return float(pa[a] - pb[a]), float(pa[a] >= 0.5), float((pa - pb)[others].abs().mean())


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
    parser.add_argument("--edit", default=None, help="an attribute to edit each projection by")
    parser.add_argument("--directions", default=None, help="generator.pt with the directions")
    parser.add_argument("--strength", type=float, default=3.0, help="in std along the direction")
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
    edit = None
    if args.edit:
        if classifier is None or not args.directions:
            parser.error("--edit needs --classifier and --directions")
        direction, scale = edit_direction(load_directions(args.directions), args.edit)
        edit = (direction, args.strength * scale, list(classifier.attributes).index(args.edit))
    schedule = P.Schedule(w_avg_samples=args.w_avg_samples)
    fingerprint = P.generator_fingerprint(G)
    print(f"{len(paths)} held-out faces at {res}px, {args.steps} steps, {args.ckpt}")
    header = ["distance", "mode", "PSNR dB", *evaluate, "attr. agreement", "s/face"]
    if edit is not None:
        header += [f"{args.edit} +{args.strength:g}: rise", "edited present", "others moved"]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    pairs: list[torch.Tensor] = []
    for name in args.distances:
        distance = P.build_distance(name, **common)
        for mode in args.modes:
            psnrs, agree, seconds, edits = [], [], [], []
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
                    if edit is not None:
                        edits.append(
                            edit_effect(classifier, G, result, edit[0], edit[1], res, edit[2])
                        )
                    if args.save:
                        pairs.append(torch.stack([target, result.image]))
            cells = [
                name, mode, f"{sum(psnrs) / len(psnrs):.2f}",
                *(f"{sum(v) / len(v):.4f}" + ("*" if j == name else "") for j, v in judged.items()),
                f"{sum(agree) / len(agree):.1%}" if agree else "-",
                f"{sum(seconds) / len(seconds):.1f}",
            ]  # fmt: skip
            if edits:
                rise, present, moved = (sum(v) / len(v) for v in zip(*edits, strict=True))
                cells += [f"{rise:+.3f}", f"{present:.0%}", f"{moved:.3f}"]
            print("| " + " | ".join(cells) + " |", flush=True)
    if args.save and pairs:
        # rows: one per face and run, target | projection, the runs in table order
        save_grid(torch.cat(pairs).clamp(-1, 1), args.save, nrow=2 * args.save_columns)


if __name__ == "__main__":
    main()
