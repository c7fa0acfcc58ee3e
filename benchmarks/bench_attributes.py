"""Attribute control measured: edits and conditional sampling of a generator with directions.

    python benchmarks/bench_attributes.py --gen .../generator.pt --classifier .../classifier.pt \
        --data ../shared/celeba [--top 10] [--seeds 100] [--faces 16]

The generator.pt must hold directions (``python attributes.py mode=directions ...``). The
attributes are the ``--top`` most frequent in CelebA's training labels (``list_attr_celeba.txt``
of the ``--data`` root). For each, with the code ``sample.py figure=edit`` runs
(:func:`~stylegan.attributes.directions.edit_images` and
:func:`~stylegan.attributes.figures.measure_edit`), on ``--seeds`` seeds never used to fit the
directions:

- the classifier's mean probability of the attribute at each strength, whether it rises
  monotonically, and the agreement at the last strength (share of faces it calls present);
- the same edit made with ``keep=[K]`` (K = Male, or Young when editing Male): the agreement
  and K's largest move of mean probability from strength 0.

Then every pair of those attributes is requested as ``sample.py attributes=[A,B]`` does
(:func:`~stylegan.attributes.conditional.conditional_faces`, ``--faces`` faces each): the
agreement of the drawn (shifted) faces before rejection, and the seeds drawn per kept face.
Kept faces agree by construction (the classifier filtered them). Prints Markdown tables;
asserts nothing. A smoke check: ``--top 2 --seeds 4 --faces 2``.
"""

from __future__ import annotations

import argparse
import itertools
import time
from pathlib import Path

import numpy as np
import torch

from stylegan.attributes.classifier import load_classifier
from stylegan.attributes.conditional import conditional_faces
from stylegan.attributes.directions import edit_direction, edit_images, load_directions
from stylegan.attributes.figures import measure_edit
from stylegan.attributes.labels import read_attribute_table
from stylegan.checkpoints import load_generator

FIRST_SEED = 900_000_000  # far from the directions' fitting seeds (seed * 10^7 ...)


def most_frequent(root: str, names: list[str], top: int, holdout: int) -> list[str]:
    """The ``top`` attributes present on most training faces (the last ``holdout`` files of
    the official order are left out, as the classifier's training does)."""
    columns, table = read_attribute_table(root)
    files = sorted(table)[: len(table) - holdout]
    labels = np.stack([table[f] for f in files])  # [N, A] in {0, 1}
    share = labels.mean(axis=0)
    order = [columns[i] for i in np.argsort(-share) if columns[i] in names]
    return order[:top]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gen", required=True, help="generator.pt with attribute directions")
    parser.add_argument("--classifier", required=True, help="classifier.pt at G's resolution")
    parser.add_argument("--data", required=True, help="CelebA root (list_attr_celeba.txt)")
    parser.add_argument("--holdout", type=int, default=1000)
    parser.add_argument("--top", type=int, default=10)
    parser.add_argument("--seeds", type=int, default=100, help="faces per edit")
    parser.add_argument("--strengths", type=float, nargs="+", default=[-3, -2, -1, 0, 1, 2, 3])
    parser.add_argument("--faces", type=int, default=16, help="faces per request (0: no requests)")
    parser.add_argument("--shift", type=float, default=1.0, help="conditional.shift")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    G, info = load_generator(args.gen)
    res = int(info["resolution"])
    classifier, _ = load_classifier(args.classifier, resolution=res)
    directions = load_directions(args.gen)
    attributes = most_frequent(args.data, list(directions.attributes), args.top, args.holdout)
    seeds = list(range(FIRST_SEED, FIRST_SEED + args.seeds))
    strengths = args.strengths
    print(f"{Path(args.gen)} at {res}px; {len(seeds)} seeds per edit; strengths {strengths}")
    print("| attribute | mean p by strength | monotonic | agreement at "
          f"{strengths[-1]:g} | with keep | agreement (keep) | kept's largest move |")  # fmt: skip
    print("|---|---|---|---|---|---|---|")
    start = time.perf_counter()
    for name in attributes:
        row = [name]
        for keep in ([], ["Young" if name == "Male" else "Male"]):
            direction, scale = edit_direction(directions, name, keep)
            images = edit_images(G, seeds, direction, scale, strengths)
            m = measure_edit(classifier, images, num_seeds=len(seeds), attribute=name, keep=keep)
            if not keep:
                mean = m["mean"]
                rising = all(b > a for a, b in itertools.pairwise(mean))
                row += [" ".join(f"{v:.2f}" for v in mean), "yes" if rising else "**no**",
                        f"{m['agreement'][-1]:.0%}"]  # fmt: skip
            else:
                kept = m["kept_mean"][keep[0]]
                ref = int(np.argmin(np.abs(np.asarray(strengths))))
                move = max(abs(v - kept[ref]) for v in kept)
                row += [keep[0], f"{m['agreement'][-1]:.0%}", f"{move:.3f}"]
        print("| " + " | ".join(row) + " |", flush=True)
    edit_seconds = time.perf_counter() - start
    print(f"\nedits: {edit_seconds:.0f} s for {len(attributes)} attributes x 2\n")
    if args.faces == 0:
        return
    print("| request | drawn agreement | seeds per face | kept |")
    print("|---|---|---|---|")
    start, agreements = time.perf_counter(), []
    for a, b in itertools.combinations(attributes, 2):
        result = conditional_faces(
            G, classifier, directions, [(a, True), (b, True)], n=args.faces, seed=FIRST_SEED,
            shift=args.shift, max_draws=50 * args.faces, progress=False,
        )  # fmt: skip
        agreements.append(result.agreement)
        print(f"| {a} + {b} | {result.agreement:.0%} | {result.cost:.2f} | {len(result.seeds)} |",
              flush=True)  # fmt: skip
    if agreements:
        print(
            f"\n{len(agreements)} requests: drawn agreement mean {np.mean(agreements):.0%}, "
            f"min {min(agreements):.0%}; {time.perf_counter() - start:.0f} s"
        )


if __name__ == "__main__":
    main()
