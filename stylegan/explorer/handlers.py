"""What the page's events do: render a view, write its files, project an uploaded photo.

Owns :class:`Handlers` (one per page): each handler takes the controls' values, asks
:class:`~.views.Explorer` for a view, writes its PNG and latent under ``<run>/images/`` and
returns what the page shows; a :class:`~stylegan.errors.UserError` becomes a line on the page
(the image stays as it was). The projection of a photo runs in a thread on its own copy of the
generator (the renders keep theirs, and its noise hooks), while the page shows its progress.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import gradio as gr
import torch

from stylegan.errors import UserError
from stylegan.explorer.uploads import keep_upload
from stylegan.explorer.views import Explorer, Settings, Source, View, write_latent, write_png
from stylegan.imaging import grid_image
from stylegan.projection import Latent, load_target_image, project, save_latent

POLL_S = 0.5  # how often the page hears of a running projection


@dataclass(frozen=True)
class ProjectionOptions:
    """How an upload is projected and what is accepted (``conf/explore.yaml``)."""

    mode: str = "w_plus"
    steps: int = 200
    distance: object = "pixels"
    max_bytes: int = 5_000_000
    max_pixels: int = 25_000_000


def timing_line(view: View) -> str:
    """``rendered in 12 ms: 1 face at 64px (faces_seed0_n1_psi1)``: the generator's time."""
    n = len(view.images)
    what = f"{n} face{'s' if n > 1 else ''}"
    return (
        f"rendered in **{view.seconds * 1000:.0f} ms**: {what} at {view.settings.resolution}px "
        f"(`{view.name}`)"
    )


class Handlers:
    """The page's event handlers, bound to one :class:`Explorer` and one run folder."""

    def __init__(self, explorer: Explorer, run_dir: Path, projection: ProjectionOptions) -> None:
        self.explorer = explorer
        self.images_dir = Path(run_dir) / "images"
        self.uploads_dir = Path(run_dir) / "uploads"
        self.projection = projection

    @staticmethod
    def settings(psi: float, cutoff: float, noise: str, resolution: int) -> Settings:
        return Settings(float(psi), int(cutoff), str(noise), int(resolution))

    def outputs(self, view: View) -> tuple:
        """(picture, timing line, PNG download, latent download) of a rendered view."""
        png = write_png(view, self.images_dir)
        latent = write_latent(self.explorer, view, self.images_dir)
        return (
            view.picture(),
            timing_line(view),
            gr.DownloadButton(value=str(png), interactive=True),
            gr.DownloadButton(value=str(latent), interactive=True),
        )

    @staticmethod
    def refused(exc: UserError) -> tuple:
        """Leave the image as it was and say why on the page."""
        return gr.skip(), f"⚠ {exc}", gr.skip(), gr.skip()

    @staticmethod
    def _source(seed: float, use_projected: bool, projected: Latent | None) -> Source:
        if not use_projected:
            return int(seed)
        if projected is None:
            raise UserError("no projected face yet: upload a photo in the Real face tab first")
        return projected.as_source()

    def faces(self, seed, grid, psi, cutoff, noise, resolution) -> tuple:
        try:
            s = self.settings(psi, cutoff, noise, resolution)
            view = self.explorer.faces(int(seed), int(grid), s)
        except UserError as exc:
            return self.refused(exc)
        return self.outputs(view)

    def mixing(
        self,
        source,
        destination,
        layers,
        psi,
        cutoff,
        noise,
        resolution,
        source_projected=False,
        destination_projected=False,
        projected=None,
    ) -> tuple:
        try:
            s = self.settings(psi, cutoff, noise, resolution)
            a = self._source(source, source_projected, projected)
            b = self._source(destination, destination_projected, projected)
            view = self.explorer.mixing(a, b, str(layers), s)
        except UserError as exc:
            return self.refused(exc)
        return self.outputs(view)

    def edit(
        self, seed, keep, psi, cutoff, noise, resolution, use_projected, projected, *strengths
    ) -> tuple:
        names = self.explorer.editable()
        try:
            s = self.settings(psi, cutoff, noise, resolution)
            source = self._source(seed, use_projected, projected)
            moves = dict(zip(names, strengths, strict=True))
            view = self.explorer.edit(source, moves, list(keep or []), s)
        except UserError as exc:
            return self.refused(exc)
        return self.outputs(view)

    def project(self, upload: str | None, progress=gr.Progress()) -> Iterator[tuple]:  # noqa: B008
        """Check and keep the upload, project it in a thread, report progress, and yield
        (message, [target | projection], latent download, the projected Latent)."""
        opts, G = self.projection, self.explorer.G
        if not upload:
            yield "⚠ choose a photo first", gr.skip(), gr.skip(), gr.skip()
            return
        try:
            kept = keep_upload(
                upload, self.uploads_dir, max_bytes=opts.max_bytes, max_pixels=opts.max_pixels
            )
            target = load_target_image(kept, self.explorer.trained)
        except UserError as exc:
            yield f"⚠ {exc}", gr.skip(), gr.skip(), gr.skip()
            return
        done = {"step": 0}
        found: dict = {}

        def run() -> None:
            try:
                found["result"] = project(
                    copy.deepcopy(G),
                    target,
                    mode=opts.mode,
                    steps=opts.steps,
                    distance=opts.distance,
                    progress=lambda step, total: done.update(step=step),
                    fingerprint=self.explorer.fingerprint,
                )
            except UserError as exc:
                found["error"] = exc

        thread = threading.Thread(target=run, name="projection", daemon=True)
        thread.start()
        while thread.is_alive():
            progress((done["step"], opts.steps), desc="projecting", unit="steps")
            yield (
                f"projecting: step {done['step']} of {opts.steps}",
                gr.skip(),
                gr.skip(),
                gr.skip(),
            )
            thread.join(POLL_S)
        if "error" in found or "result" not in found:
            yield (
                f"⚠ {found.get('error', 'the projection failed')}",
                gr.skip(),
                gr.skip(),
                gr.skip(),
            )
            return
        result = found["result"]
        path = save_latent(
            self.images_dir / f"{kept.stem}.pt",
            result.ws,
            result.noise,
            {**result.meta, "source": str(kept)},
        )
        latent = Latent(
            ws=result.ws, noise=[n.cpu() for n in result.noise], meta=result.meta, path=path
        )
        picture = grid_image(torch.stack([target, result.image.cpu()]), nrow=2)
        yield (
            f"projected `{kept.name}` in {opts.steps} steps ({opts.mode}, {result.psnr:.1f} dB "
            "PSNR): tick *the projected face* in Style mixing or Attributes to use it",
            picture,
            gr.DownloadButton(value=str(path), interactive=True),
            latent,
        )
