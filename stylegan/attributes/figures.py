"""The attribute figures of ``sample.py``: the edit grid and video, what the classifier measures
on them, and the conditional faces' grid. Images are computed by :mod:`.directions` and
:mod:`.conditional`; this module names, lays out and writes them with :mod:`stylegan.sampling`'s
encoders, and measures edits with a classifier.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from stylegan import sampling
from stylegan.attributes.labels import request_label
from stylegan.errors import ConfigError
from stylegan.imaging import grid_image, save_grid, to_uint8


def check_strengths(strengths: Sequence[float]) -> list[float]:
    """At least one strength, each a finite number."""
    values = [float(s) for s in strengths]
    if not values or not all(np.isfinite(values)):
        raise ConfigError(f"strengths must list at least one finite number, got {strengths!r}")
    return values


def edit_name(attribute: str, keep: Sequence[str], seeds: Sequence[int], strengths) -> str:
    """``edit_Smiling_keep-Male_seeds0-5_s-3..3``."""
    kept = f"_keep-{'-'.join(keep)}" if keep else ""
    span = f"s{strengths[0]:g}..{strengths[-1]:g}" if len(strengths) > 1 else f"s{strengths[0]:g}"
    return f"edit_{attribute}{kept}_{sampling.seeds_label(seeds)}_{span}"


def write_edit(
    images: Tensor,
    out_dir: Path,
    *,
    attribute: str,
    keep: Sequence[str],
    seeds: Sequence[int],
    strengths: Sequence[float],
    frames: Tensor | None = None,
    fps: float = 30,
    mp4: bool = False,
) -> list[Path]:
    """The grid (row = seed, column = strength) and, given ``frames`` [F, S, C, r, r] (every
    seed side by side per frame), a GIF and optionally an MP4 of the sweep."""
    name = edit_name(attribute, keep, seeds, strengths)
    written = [save_grid(images, out_dir / f"{name}.png", nrow=len(strengths))]
    if frames is not None:
        grids = torch.stack(
            [
                torch.from_numpy(np.array(grid_image(f, nrow=len(seeds)))).permute(2, 0, 1)
                for f in to_uint8(frames.flatten(0, 1)).view(frames.shape)
            ]
        )
        written.append(sampling.save_gif(grids, out_dir / f"{name}.gif", fps=fps))
        if mp4:
            written.append(sampling.save_mp4(grids, out_dir / f"{name}.mp4", fps=fps))
    return written


@torch.no_grad()
def measure_edit(
    classifier: torch.nn.Module,
    images: Tensor,
    *,
    num_seeds: int,
    attribute: str,
    keep: Sequence[str] = (),
    batch_size: int = 32,
) -> dict:
    """The classifier on an edit grid ([seeds * strengths] images, row-major): ``mean`` [K]
    probability of ``attribute`` per strength, ``agreement`` [K] (share of seeds it calls
    present), and for each kept attribute the largest change of its mean probability from
    the strength closest to 0 (``kept_change``)."""
    names = list(classifier.attributes)
    device = next(classifier.parameters(), torch.empty(0)).device
    probs = torch.cat(
        [
            torch.sigmoid(classifier(images[s : s + batch_size].to(device)).float()).cpu()
            for s in range(0, len(images), batch_size)
        ]
    ).view(num_seeds, -1, len(names))  # [S, K, A]
    a = names.index(attribute)
    mean = probs.mean(dim=0)  # [K, A]
    return {
        "mean": mean[:, a].tolist(),
        "agreement": (probs[:, :, a] >= 0.5).float().mean(dim=0).tolist(),
        "kept_mean": {k: mean[:, names.index(k)].tolist() for k in keep},
    }


def format_edit_measurement(
    measured: dict, attribute: str, strengths: Sequence[float]
) -> list[str]:
    """``Smiling mean probability: -3: 0.02 ... 3: 0.97 (agreement at 3: 94%)`` and one line
    per kept attribute with its largest move."""
    pairs = "  ".join(f"{s:g}: {m:.3f}" for s, m in zip(strengths, measured["mean"], strict=True))
    lines = [
        f"{attribute} mean probability by strength  {pairs}  "
        f"(agreement at {strengths[-1]:g}: {measured['agreement'][-1]:.0%})"
    ]
    ref = int(np.argmin(np.abs(np.asarray(strengths))))
    for name, values in measured["kept_mean"].items():
        move = max(abs(v - values[ref]) for v in values)
        lines.append(f"kept {name}: mean probability {values[ref]:.3f}, largest change {move:.3f}")
    return lines


def write_conditional(
    images: Tensor, out_dir: Path, *, request: Sequence[tuple[str, bool]], seed: int, n: int
) -> list[Path]:
    """``faces_Male-Young-noEyeglasses_seed0_n64.png``."""
    name = f"faces_{request_label(request)}_seed{seed}_n{n}.png"
    nrow = max(1, int(np.ceil(np.sqrt(len(images)))))
    return [save_grid(images, out_dir / name, nrow=nrow)]


def sweep_strengths(strengths: Sequence[float], steps: int) -> list[float]:
    """``steps`` strengths evenly from the first to the last (the video's frames)."""
    if steps < 2:
        raise ConfigError(f"edit.steps must be >= 2, got {steps}")
    return np.linspace(strengths[0], strengths[-1], steps).tolist()


def edit_figure(
    G,
    *,
    direction: Tensor,
    scale: float,
    attribute: str,
    keep: Sequence[str],
    seeds: Sequence[int],
    strengths: Sequence[float],
    out_dir: Path,
    video: bool = False,
    steps: int = 30,
    fps: float = 30,
    mp4: bool = False,
    classifier: torch.nn.Module | None = None,
    **render,
) -> tuple[list[Path], list[str]]:
    """Render, write and (with a classifier) measure ``figure=edit``; returns the files and the
    lines to print. ``render``: psi, cutoff, noise_mode, resolution, batch_size."""
    from stylegan.attributes.directions import edit_images

    images = edit_images(G, seeds, direction, scale, strengths, **render)
    frames = None
    if video:
        sweep = sweep_strengths(strengths, steps)
        flat = edit_images(G, seeds, direction, scale, sweep, **render)
        frames = flat.view(len(seeds), len(sweep), *flat.shape[1:]).transpose(0, 1)
    written = write_edit(
        images, out_dir, attribute=attribute, keep=keep, seeds=seeds, strengths=strengths,
        frames=frames, fps=fps, mp4=mp4,
    )  # fmt: skip
    lines: list[str] = []
    if classifier is not None:
        measured = measure_edit(
            classifier, images, num_seeds=len(seeds), attribute=attribute, keep=keep,
            batch_size=render.get("batch_size", 32),
        )  # fmt: skip
        lines = format_edit_measurement(measured, attribute, strengths)
    return written, lines


def check_edit_options(
    attribute: str | None, strengths: Sequence[float], steps: int, fps: float
) -> list[float]:
    """figure=edit's own values (names are checked against the generator's directions)."""
    if not attribute:
        raise ConfigError("figure=edit needs attribute=NAME, e.g. attribute=Smiling")
    sweep_strengths([0.0, 1.0], steps)
    sampling.check_fps(fps)
    return check_strengths(strengths)


class AttributeContext:
    """What the attribute figures of one ``sample.py`` run need, loaded and checked before
    anything is drawn: the generator's directions, the classifier (or None), the edit direction
    and scale (figure=edit) and the parsed request (attributes=[...])."""

    def __init__(
        self,
        *,
        ckpt: str,
        resolution: int,
        attribute: str | None,
        keep: Sequence[str],
        attributes: Sequence[str],
        classifier: str | None,
        device: torch.device | str = "cpu",
    ) -> None:
        from stylegan.attributes.classifier import load_classifier
        from stylegan.attributes.directions import edit_direction, load_directions
        from stylegan.attributes.labels import parse_request
        from stylegan.errors import UserError

        self.directions = load_directions(ckpt)
        names = self.directions.attributes
        self.request = parse_request(attributes, names) if attributes else []
        self.direction, self.scale = None, 1.0
        if attribute:
            self.direction, self.scale = edit_direction(self.directions, attribute, keep)
        path = classifier or self.directions.classifier
        self.classifier = None
        if classifier or (path and Path(path).is_file()):
            self.classifier, _ = load_classifier(path, resolution=resolution, device=device)
        elif self.request:
            raise UserError(
                f"attributes=[...] needs the classifier; {path or 'none'} is not there: pass "
                "classifier=PATH/classifier.pt"
            )
        if self.classifier is not None:
            missing = [n for n, _ in self.request if n not in self.classifier.attributes]
            if missing:
                raise UserError(f"the classifier has no output for {', '.join(missing)}")
