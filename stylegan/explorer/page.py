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
from dataclasses import dataclass
from pathlib import Path

import gradio as gr

from stylegan.explorer.handlers import Handlers, ProjectionOptions
from stylegan.explorer.views import Explorer

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


def _output_panel(label: str, elem: str) -> list:
    """Image, timing line and the two downloads of one tab."""
    image = gr.Image(
        label=label,
        type="pil",
        format="png",
        interactive=False,
        height=320,
        elem_id=f"{elem}-image",
    )
    timing = gr.Markdown(elem_id=f"{elem}-timing")
    with gr.Row():
        png = gr.DownloadButton("Download PNG", interactive=False, elem_id=f"{elem}-png")
        latent = gr.DownloadButton(
            "Download latent (.pt)", interactive=False, elem_id=f"{elem}-latent"
        )
    return [image, timing, png, latent]


def build_page(
    explorer: Explorer,
    run_dir: Path,
    *,
    defaults: PageDefaults | None = None,
    projection: ProjectionOptions | None = None,
) -> gr.Blocks:
    """The page for ``explorer``; files go under ``run_dir``."""
    defaults, projection = defaults or PageDefaults(), projection or ProjectionOptions()
    on = Handlers(explorer, run_dir, projection)
    num_ws, info = explorer.G.num_ws, explorer.info
    title = (
        f"StyleGAN explorer · {explorer.ckpt.name} · {explorer.trained}px · "
        f"{info.get('images_seen') or 0:,} images seen"
    )
    editable = explorer.editable()
    with gr.Blocks(title="StyleGAN explorer", analytics_enabled=False) as demo:
        projected = gr.State(None)  # this browser session's projected face (a Latent)
        gr.Markdown(f"### {title}")
        with gr.Row():
            psi = gr.Slider(
                -2,
                2,
                value=defaults.psi,
                step=0.05,
                label="truncation ψ",
                info="1 = none, 0 = the mean face",
                elem_id="psi",
            )
            cutoff = gr.Slider(
                1,
                num_ws,
                value=min(defaults.cutoff or num_ws, num_ws),
                step=1,
                label="cutoff",
                info=f"truncate layers below it ({num_ws} = all)",
                elem_id="cutoff",
            )
            noise = gr.Radio(
                ["random", "const", "none"], value=defaults.noise, label="noise", elem_id="noise"
            )
            resolution = gr.Dropdown(
                explorer.resolutions(),
                value=explorer.trained,
                label="resolution",
                elem_id="resolution",
            )
        shared = [psi, cutoff, noise, resolution]
        with gr.Tabs():
            with gr.Tab("Faces", id="faces"):
                with gr.Row():
                    seed = gr.Number(
                        defaults.seed, precision=0, minimum=0, label="seed", elem_id="seed"
                    )
                    lucky = gr.Button("random seed", elem_id="random-seed")
                    grid = gr.Slider(
                        1,
                        explorer.max_grid,
                        value=defaults.grid,
                        step=1,
                        label="faces per side",
                        elem_id="grid",
                    )
                faces_out = _output_panel("faces", "faces")
            with gr.Tab("Style mixing", id="mixing"):
                with gr.Row():
                    source = gr.Number(
                        defaults.mixing[0],
                        precision=0,
                        minimum=0,
                        label="source seed (styles copied from)",
                        elem_id="mix-source",
                    )
                    destination = gr.Number(
                        defaults.mixing[1],
                        precision=0,
                        minimum=0,
                        label="destination seed (receives them)",
                        elem_id="mix-destination",
                    )
                    ranges = explorer.mixing_ranges(explorer.trained)
                    layers = gr.Radio(
                        ranges,
                        value=ranges[0],
                        label="layers (paper, Fig. 3)",
                        info="coarse 4-8px, middle 16-32px, fine 64px and up",
                        elem_id="mix-layers",
                    )
                with gr.Row():
                    source_projected = gr.Checkbox(False, label="source: the projected face")
                    destination_projected = gr.Checkbox(
                        False, label="destination: the projected face"
                    )
                gr.Markdown("source · destination · the destination with the source's styles")
                mixing_out = _output_panel("style mixing", "mixing")
            with gr.Tab("Attributes", id="attributes", visible=bool(editable)):
                with gr.Row():
                    edit_seed = gr.Number(
                        defaults.seed, precision=0, minimum=0, label="seed", elem_id="edit-seed"
                    )
                    edit_projected = gr.Checkbox(False, label="edit the projected face")
                keep = gr.CheckboxGroup(editable, label="keep (conditional edit)", elem_id="keep")
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
            with gr.Tab("Real face", id="real"):
                gr.Markdown(
                    f"A face photo (PNG, JPEG, WebP, BMP; at most {projection.max_bytes / 1e6:g} "
                    "MB), aligned as CelebA's (178×218) or a square crop of a face. It is "
                    f"projected into W{'+' if projection.mode == 'w_plus' else ''} in "
                    f"{projection.steps} steps ({projection.distance}); the page stays usable."
                )
                upload = gr.File(
                    label="photo", file_types=["image"], type="filepath", elem_id="upload"
                )
                start = gr.Button("project", variant="primary", elem_id="project")
                status = gr.Markdown(elem_id="project-status")
                real_image = gr.Image(
                    label="photo · projection",
                    type="pil",
                    format="png",
                    interactive=False,
                    height=320,
                    elem_id="real-image",
                )
                real_latent = gr.DownloadButton(
                    "Download latent (.pt)", interactive=False, elem_id="real-latent"
                )

        faces_in = [seed, grid, *shared]
        mixing_in = [
            source,
            destination,
            layers,
            *shared,
            source_projected,
            destination_projected,
            projected,
        ]
        edit_in = [edit_seed, keep, *shared, edit_projected, projected, *sliders]
        common = {"concurrency_id": RENDER_QUEUE, "trigger_mode": "always_last"}
        views = [
            (faces_in, on.faces, faces_out, "faces"),
            (mixing_in, on.mixing, mixing_out, "mixing"),
        ]
        if editable:
            views.append((edit_in, on.edit, edit_out, "edit"))
        for inputs, fn, outputs, name in views:
            triggers = [c.change for c in inputs if not isinstance(c, gr.State)]
            gr.on(triggers, fn, inputs, outputs, api_name=name, **common)
            demo.load(fn, inputs, outputs, api_name=False, **common)
        lucky.click(lambda: random.randint(0, MAX_SEED), None, seed, api_name="random_seed")
        start.click(
            on.project,
            [upload],
            [status, real_image, real_latent, projected],
            api_name="project",
            concurrency_id="projection",
        )
    return demo
