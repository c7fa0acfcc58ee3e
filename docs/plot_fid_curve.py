"""Draw an FID-over-kimg curve as a small PNG with PIL (no plotting library needed).

    python docs/plot_fid_curve.py docs/cpu_faces32_fid.png 20:180.1 60:95.2 ... --floor 20.3
    python docs/plot_fid_curve.py out.png bce=20:300,60:150 wgan_gp=20:320,60:200 --floor 19.5
    python docs/plot_fid_curve.py out.png "run 9=120:327,160:149" --kimg-from 90  # a zoomed axis
    python docs/plot_fid_curve.py out.png "run 21=12.4:321,84.6:70" --xlabel "kimg at 64 px"

Each point is ``kimg:fid``; ``label=kimg:fid,kimg:fid,...`` is one labelled curve of several.
``--floor`` draws the real-vs-real FID at the same counts as a dashed
line. Used for the figure of the CPU recipe in docs/recipes.md and the README.
"""

from __future__ import annotations

import argparse
import math

from PIL import Image, ImageDraw

WIDTH, HEIGHT, MARGIN = 420, 260, 44


COLOURS = [(200, 30, 30), (30, 80, 200), (30, 150, 60), (150, 60, 160)]


def plot(
    series: dict[str, list[tuple[float, float]]],
    floor: float | None,
    title: str,
    kimg_from: float = 0.0,
    xlabel: str = "kimg",
) -> Image.Image:
    image = Image.new("RGB", (WIDTH, HEIGHT), "white")
    draw = ImageDraw.Draw(image)
    points = [p for curve in series.values() for p in curve]
    kimgs = [k for k, _ in points]
    fids = [f for _, f in points] + ([floor] if floor is not None else [])
    x_max = max(kimgs) * 1.05
    y_max = math.ceil(max(fids) / 50.0) * 50.0

    def xy(kimg: float, fid: float) -> tuple[float, float]:
        x = MARGIN + (WIDTH - 1.5 * MARGIN) * (kimg - kimg_from) / (x_max - kimg_from)
        y = HEIGHT - MARGIN - (HEIGHT - 1.6 * MARGIN) * fid / y_max
        return x, y

    left, bottom = xy(kimg_from, 0)
    right, top = xy(x_max, y_max)
    draw.line([(left, top), (left, bottom), (right, bottom)], fill="black")
    for tick in range(0, int(y_max) + 1, 50):
        _, y = xy(kimg_from, tick)
        draw.line([(left - 4, y), (left, y)], fill="black")
        draw.text((4, y - 6), f"{tick}", fill="black")
    step = 50 if x_max - kimg_from > 150 else 20 if x_max - kimg_from > 60 else 10
    for tick in range(math.ceil(kimg_from / step) * step, int(x_max) + 1, step):
        x, _ = xy(tick, 0)
        draw.line([(x, bottom), (x, bottom + 4)], fill="black")
        draw.text((x - 8, bottom + 6), f"{tick}", fill="black")
    draw.text((WIDTH / 2 - draw.textlength(xlabel) / 2, HEIGHT - 16), xlabel, fill="black")
    draw.text((MARGIN + 60, 6), title, fill="black")
    if floor is not None:
        _, y = xy(kimg_from, floor)
        for x0 in range(int(left), int(right), 10):
            draw.line([(x0, y), (x0 + 5, y)], fill="gray")
        draw.text((right - 110, y - 14), f"real vs real {floor:.1f}", fill="gray")
    for index, (label, curve) in enumerate(series.items()):
        colour = COLOURS[index % len(COLOURS)]
        line = [xy(k, f) for k, f in curve]
        if len(line) > 1:
            draw.line(line, fill=colour, width=2)
        for (x, y), (_, fid) in zip(line, curve, strict=True):
            draw.ellipse([x - 3, y - 3, x + 3, y + 3], fill=colour)
            draw.text((x + 4, y - 14), f"{fid:.0f}", fill=colour)
        if label:
            draw.text((left + 10, bottom - 32 - 14 * index), label, fill=colour)
    return image


def parse_series(arguments: list[str]) -> dict[str, list[tuple[float, float]]]:
    """``kimg:fid`` points (one unlabelled curve) or ``label=kimg:fid,...`` curves."""
    series: dict[str, list[tuple[float, float]]] = {}
    for argument in arguments:
        label, _, points = argument.rpartition("=")
        for point in points.split(","):
            kimg, fid = (float(v) for v in point.split(":"))
            series.setdefault(label, []).append((kimg, fid))
    return series


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out")
    parser.add_argument("points", nargs="+", help="kimg:fid, or label=kimg:fid,kimg:fid,...")
    parser.add_argument("--floor", type=float, default=None)
    parser.add_argument("--title", default="FID vs held-out faces")
    parser.add_argument("--kimg-from", type=float, default=0.0, help="where the kimg axis starts")
    parser.add_argument("--xlabel", default="kimg", help="the x axis' name")
    args = parser.parse_args()
    image = plot(parse_series(args.points), args.floor, args.title, args.kimg_from, args.xlabel)
    image.save(args.out)


if __name__ == "__main__":
    main()
