"""The explorer's Gradio page: the controls, their events, and what each shows.

Owns the layout (shared truncation / noise / resolution controls above one tab per view), the
event wiring and the page's messages. Every image comes from :class:`~.views.Explorer`; each
shown image is also written to ``<run>/images/`` (its PNG and, where it is one face, its latent)
and offered for download from there. Renders share one queue (``concurrency_id="render"``), so
the generator's noise hooks never see two renders at once. Bad input is a line on the page, never
a traceback.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import gradio as gr

from stylegan.errors import UserError
from stylegan.explorer.views import Explorer, Settings, View, write_png

RENDER_QUEUE = "render"  # one queue for every event that runs the generator
MAX_SEED = 2**31 - 1
STRENGTH_RANGE = 3.0  # attribute sliders: -3 .. 3 standard deviations, as sample.py's default


@dataclass(frozen=True)
class PageDefaults:
    """The controls' starting values (``conf/explore.yaml``)."""

    seed: int = 0
    grid: int = 1
    psi: float = 1.0
    cutoff: int | None = None
    noise: str = "random"
    mixing: tuple[int, int] = (0, 1)


def timing_line(view: View) -> str:
    """``12 ms for 1 face at 64px (batch 32)``: the generator's time for the view."""
    n = len(view.images)
    what = f"{n} face{'s' if n > 1 else ''}"
    return (
        f"rendered in **{view.seconds * 1000:.0f} ms**: {what} at {view.settings.resolution}px "
        f"(`{view.name}`)"
    )


class Page:
    """The handlers, bound to one :class:`Explorer` and one run folder."""

    def __init__(self, explorer: Explorer, run_dir: Path, write_latent: Callable | None) -> None:
        self.explorer = explorer
        self.images_dir = Path(run_dir) / "images"
        self.write_latent = write_latent

    def settings(self, psi: float, cutoff: float, noise: str, resolution: int) -> Settings:
        return Settings(float(psi), int(cutoff), str(noise), int(resolution))

    def outputs(self, view: View) -> tuple:
        """(picture, timing line, PNG download, latent download) of a rendered view."""
        png = write_png(view, self.images_dir)
        latent = None
        if self.write_latent is not None:
            latent = self.write_latent(view, self.images_dir)
        return (
            view.picture(),
            timing_line(view),
            gr.DownloadButton(value=str(png), interactive=True),
            gr.DownloadButton(value=str(latent) if latent else None, interactive=bool(latent)),
        )

    def refused(self, exc: UserError) -> tuple:
        """Leave the image as it was and say why on the page."""
        return gr.skip(), f"⚠ {exc}", gr.skip(), gr.skip()

    def faces(self, seed, grid, psi, cutoff, noise, resolution) -> tuple:
        try:
            view = self.explorer.faces(
                int(seed), int(grid), self.settings(psi, cutoff, noise, resolution)
            )
        except UserError as exc:
            return self.refused(exc)
        return self.outputs(view)

    def mixing(self, source, destination, layers, psi, cutoff, noise, resolution) -> tuple:
        try:
            view = self.explorer.mixing(
                int(source), int(destination), str(layers),
                self.settings(psi, cutoff, noise, resolution),
            )  # fmt: skip
        except UserError as exc:
            return self.refused(exc)
        return self.outputs(view)

    def edit(self, seed, keep, psi, cutoff, noise, resolution, *strengths) -> tuple:
        names = self.explorer.editable()
        try:
            view = self.explorer.edit(
                int(seed), dict(zip(names, strengths, strict=True)), list(keep or []),
                self.settings(psi, cutoff, noise, resolution),
            )  # fmt: skip
        except UserError as exc:
            return self.refused(exc)
        return self.outputs(view)


def _output_panel(label: str, elem: str) -> list:
    """Image, timing line and the two downloads of one tab."""
    image = gr.Image(label=label, type="pil", format="png", interactive=False, height=320,
                     elem_id=f"{elem}-image")  # fmt: skip
    timing = gr.Markdown(elem_id=f"{elem}-timing")
    with gr.Row():
        png = gr.DownloadButton("Download PNG", interactive=False, elem_id=f"{elem}-png")
        latent = gr.DownloadButton("Download latent (.pt)", interactive=False,
                                   elem_id=f"{elem}-latent")  # fmt: skip
    return [image, timing, png, latent]


def build_page(
    explorer: Explorer,
    run_dir: Path,
    *,
    defaults: PageDefaults = PageDefaults(),
    write_latent: Callable | None = None,
    extra_tabs: Callable | None = None,
) -> gr.Blocks:
    """The page. ``write_latent(view, folder) -> path`` writes a one-face view's latent;
    ``extra_tabs(page, shared)`` adds tabs (the real-face tab) inside the tab row."""
    page = Page(explorer, run_dir, write_latent)
    G, info = explorer.G, explorer.info
    num_ws = G.num_ws
    title = (
        f"StyleGAN explorer · {explorer.ckpt.name} · {explorer.trained}px · "
        f"{info.get('images_seen') or 0:,} images seen"
    )
    with gr.Blocks(title="StyleGAN explorer", analytics_enabled=False) as demo:
        gr.Markdown(f"### {title}")
        with gr.Row():
            psi = gr.Slider(-2, 2, value=defaults.psi, step=0.05, label="truncation ψ",
                            info="1 = none, 0 = the mean face", elem_id="psi")  # fmt: skip
            cutoff = gr.Slider(1, num_ws, value=min(defaults.cutoff or num_ws, num_ws), step=1,
                               label="cutoff", info=f"truncate layers below it ({num_ws} = all)",
                               elem_id="cutoff")  # fmt: skip
            noise = gr.Radio(["random", "const", "none"], value=defaults.noise, label="noise",
                             elem_id="noise")  # fmt: skip
            resolution = gr.Dropdown(explorer.resolutions(), value=explorer.trained,
                                     label="resolution", elem_id="resolution")  # fmt: skip
        shared = [psi, cutoff, noise, resolution]
        with gr.Tabs():
            with gr.Tab("Faces", id="faces"):
                with gr.Row():
                    seed = gr.Number(defaults.seed, precision=0, minimum=0, label="seed",
                                     elem_id="seed")  # fmt: skip
                    lucky = gr.Button("random seed", elem_id="random-seed")
                    grid = gr.Slider(1, explorer.max_grid, value=defaults.grid, step=1,
                                     label="faces per side", elem_id="grid")  # fmt: skip
                faces_out = _output_panel("faces", "faces")
            with gr.Tab("Style mixing", id="mixing"):
                with gr.Row():
                    source = gr.Number(defaults.mixing[0], precision=0, minimum=0,
                                       label="source seed (styles copied from)",
                                       elem_id="mix-source")  # fmt: skip
                    destination = gr.Number(defaults.mixing[1], precision=0, minimum=0,
                                            label="destination seed (receives them)",
                                            elem_id="mix-destination")  # fmt: skip
                    ranges = explorer.mixing_ranges(explorer.trained)
                    layers = gr.Radio(ranges, value=ranges[0], label="layers (paper, Fig. 3)",
                                      info="coarse 4-8px, middle 16-32px, fine 64px and up",
                                      elem_id="mix-layers")  # fmt: skip
                gr.Markdown("source · destination · the destination with the source's styles")
                mixing_out = _output_panel("style mixing", "mixing")
            editable = explorer.editable()
            with gr.Tab("Attributes", id="attributes", visible=bool(editable)):
                edit_seed = gr.Number(defaults.seed, precision=0, minimum=0, label="seed",
                                      elem_id="edit-seed")  # fmt: skip
                keep = gr.CheckboxGroup(editable, label="keep (conditional edit)",
                                        elem_id="keep")  # fmt: skip
                with gr.Row():
                    sliders = [
                        gr.Slider(
                            -STRENGTH_RANGE,
                            STRENGTH_RANGE,
                            value=0,
                            step=0.25,
                            label=n,
                            elem_id=f"attr-{n}",
                        )
                        for n in editable
                    ]
                edit_out = _output_panel("edited face", "edit")
            if extra_tabs is not None:
                extra_tabs(page, shared)

        faces_in = [seed, grid, *shared]
        mixing_in = [source, destination, layers, *shared]
        edit_in = [edit_seed, keep, *shared, *sliders]
        common = {"concurrency_id": RENDER_QUEUE, "trigger_mode": "always_last"}
        gr.on([c.change for c in faces_in], page.faces, faces_in, faces_out,
              api_name="faces", **common)  # fmt: skip
        gr.on([c.change for c in mixing_in], page.mixing, mixing_in, mixing_out,
              api_name="mixing", **common)  # fmt: skip
        demo.load(page.faces, faces_in, faces_out, **common)
        demo.load(page.mixing, mixing_in, mixing_out, **common)
        if editable:
            gr.on([c.change for c in edit_in], page.edit, edit_in, edit_out,
                  api_name="edit", **common)  # fmt: skip
            demo.load(page.edit, edit_in, edit_out, **common)
        lucky.click(lambda: random.randint(0, MAX_SEED), None, seed, api_name="random_seed")
    return demo
