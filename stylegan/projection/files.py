"""What ``project.py`` writes for each image ``<name>``: ``<name>.pt`` (the latent, see
:mod:`.latents`), ``<name>_target-projection.png`` (the prepared target and its projection side
by side) and, on request, ``<name>_projection.gif`` / ``.mp4`` (target | the image every few
steps). Encoders are :mod:`stylegan.sampling.files`' and :mod:`stylegan.imaging`'s (atomic)."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from stylegan.imaging import save_grid
from stylegan.projection.latents import save_latent
from stylegan.sampling.files import save_gif, save_mp4


def write_projection(
    out_dir: Path,
    name: str,
    *,
    target: Tensor,
    projection: object,
    video: bool = False,
    fps: float = 30,
    mp4: bool = False,
) -> list[Path]:
    """Write the latent, the side-by-side PNG and optionally the video of one
    :class:`~stylegan.projection.Projection`; returns the paths written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    meta = dict(projection.meta)
    written = [save_latent(out_dir / f"{name}.pt", projection.ws, projection.noise, meta)]
    pair = torch.stack([target.cpu(), projection.image.clamp(-1, 1)])
    written.append(save_grid(pair, out_dir / f"{name}_target-projection.png", nrow=2))
    if video and projection.frames is not None:
        frames = projection.frames.clamp(-1, 1)
        side = torch.cat([target.cpu()[None].expand_as(frames), frames], dim=3)  # [F, 3, R, 2R]
        written.append(save_gif(side, out_dir / f"{name}_projection.gif", fps=fps))
        if mp4:
            written.append(save_mp4(side, out_dir / f"{name}_projection.mp4", fps=fps))
    return written
