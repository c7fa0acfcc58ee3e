"""Figures from a trained StyleGAN: faces, truncation sweep, style mixing, noise, interpolation.

Examples:
    python sample.py ckpt=outputs/train/<date>/<time>/generator.pt n=64 seed=0 psi=0.7
    python sample.py ckpt=.../checkpoints/last.ckpt n=50000 save_individual=true  # for FID tools
    python sample.py ckpt=... figure=truncation truncation.seeds=[0,1,2] cutoff=8
    python sample.py ckpt=... figure=mixing mixing.layers=[coarse,middle,fine]  # Fig. 3
    python sample.py ckpt=... figure=mixing mixing.layers=0-3 mixing.sources=[1,2,3]
    python sample.py ckpt=... figure=noise noise_figure.seed=7 noise_figure.draws=16
    python sample.py ckpt=... figure=interpolation interpolation.space=z interpolation.seeds=[0,1,0]
    python sample.py ckpt=... figure=all noise=const device=cuda batch_size=64
    python sample.py ckpt=.../generator.pt figure=edit attribute=Smiling keep=[Male] edit.video=true
    python sample.py ckpt=.../generator.pt n=16 attributes=[Male,Young,-Eyeglasses]
    python sample.py ckpt=... figure=mixing mixing.destinations=[out/face.pt,5]  # a real face
    python sample.py ckpt=... figure=interpolation interpolation.seeds=[out/a.pt,out/b.pt]
    python sample.py ckpt=.../generator.pt figure=edit attribute=Smiling edit.seeds=[out/face.pt]

Files land in ``outputs/sample/<date>/<time>/`` (``out_dir=`` to change) with names that say what
they are, e.g. ``faces_seed0_n64_psi0.7.png``; the knobs are documented in ``conf/sample.yaml``.
``sample(cfg)`` is what the command runs; tests call it directly with a composed config.
"""

import logging
from pathlib import Path

import hydra
import torch
from omegaconf import DictConfig, OmegaConf

from stylegan import projection, sampling
from stylegan.attributes import conditional_faces
from stylegan.attributes import figures as attribute_figures
from stylegan.checkpoints import load_generator
from stylegan.cli import resolve_device, run_hydra_main, run_reporting_user_errors
from stylegan.config import SampleConfig
from stylegan.errors import ConfigError, UserError
from stylegan.networks import Generator
from stylegan.networks.generator import check_cutoff, check_psi

# Absolute, so main() finds conf/ when this file is imported (tests), not only run as __main__.
CONF_DIR = str(Path(__file__).resolve().parent / "conf")

log = logging.getLogger("sample")


def read_options(cfg: DictConfig) -> SampleConfig:
    """``cfg`` as a :class:`SampleConfig` of plain values, every value checked up front (one-line
    ConfigError) so nothing is written on a bad one. Types were checked when the config was
    composed; these are the ranges and choices, each owned by the code that uses it."""
    if OmegaConf.is_missing(cfg, "ckpt") or not cfg.get("ckpt"):
        raise UserError("ckpt is required: python sample.py ckpt=PATH (last.ckpt or generator.pt)")
    opts: SampleConfig = OmegaConf.to_object(cfg)
    if not opts.out_dir:
        raise ConfigError("out_dir must be a folder path")
    opts.figure = sampling.check_figures(opts.figure)
    opts.psi = check_psi(opts.psi)
    check_cutoff(opts.cutoff)
    opts.noise = sampling.check_noise_mode(opts.noise)
    sampling.check_batch_size(opts.batch_size)
    if "faces" in opts.figure:
        if opts.n < 1:
            raise ConfigError(f"n must be an integer >= 1, got {opts.n}")
        sampling.check_seed(opts.seed)
        sampling.check_faces_output(opts.grid_max, opts.save_individual)
    if "truncation" in opts.figure:
        sampling.check_seeds(opts.truncation.seeds, "truncation.seeds")
        psis = (
            opts.truncation.psis
            if isinstance(opts.truncation.psis, list)
            else [opts.truncation.psis]
        )
        if not psis:
            raise ConfigError("truncation.psis must list at least one ψ")
        opts.truncation.psis = [check_psi(p, "truncation.psis") for p in psis]
    if "mixing" in opts.figure:
        m = opts.mixing
        m.sources = sampling.check_sources(m.sources, "mixing.sources")
        m.destinations = sampling.check_sources(m.destinations, "mixing.destinations")
        opts.mixing.layers = sampling.mixing_specs(opts.mixing.layers)
    if "noise" in opts.figure:
        sampling.check_seed(opts.noise_figure.seed, "noise_figure.seed")
        sampling.check_noise_draws(opts.noise_figure.draws)
    if "interpolation" in opts.figure:
        o = opts.interpolation
        sampling.check_space(o.space)
        o.seeds = sampling.check_sources(o.seeds, "interpolation.seeds", minimum=2)
        sampling.check_space_sources(o.space, o.seeds)
        sampling.check_steps(opts.interpolation.steps)
        sampling.check_fps(opts.interpolation.fps)
    if "edit" in opts.figure:
        e = opts.edit
        e.seeds = sampling.check_sources(e.seeds, "edit.seeds")
        opts.strengths = attribute_figures.check_edit_options(
            opts.attribute, opts.strengths, e.steps, e.fps
        )
    return opts


def resolve_latents(opts: SampleConfig, G: Generator) -> None:
    """Replace every latent-file entry of the figures' face lists by its
    :class:`~stylegan.sampling.FixedLatent`, checked against ``G`` (one line when it was
    projected with another generator's w_dim or layer count)."""
    lists = [(opts.mixing, "sources"), (opts.mixing, "destinations"),
             (opts.interpolation, "seeds"), (opts.edit, "seeds")]  # fmt: skip
    fingerprint = None
    for owner, key in lists:
        faces = getattr(owner, key)
        if not any(isinstance(f, str) for f in faces):
            continue
        fingerprint = fingerprint or projection.generator_fingerprint(G)
        setattr(owner, key, [
            projection.load_latent(f, G, fingerprint=fingerprint).as_source()
            if isinstance(f, str) else f
            for f in faces
        ])  # fmt: skip


def draw_attribute_figure(
    figure: str,
    G: Generator,
    opts: SampleConfig,
    attr: attribute_figures.AttributeContext,
    common: dict,
    psi: float | list[float],
) -> list[Path]:
    """figure=edit, or faces with attributes=[...] (:mod:`stylegan.attributes`)."""
    out_dir, render = Path(opts.out_dir), {**common, "psi": psi, "noise_mode": opts.noise}
    if figure == "edit":
        e = opts.edit
        mp4 = e.video and e.mp4 and sampling.mp4_available()
        written, lines = attribute_figures.edit_figure(
            G, direction=attr.direction, scale=attr.scale, attribute=opts.attribute,
            keep=opts.keep, seeds=e.seeds, strengths=opts.strengths, out_dir=out_dir,
            video=e.video, steps=e.steps, fps=e.fps, mp4=mp4, classifier=attr.classifier,
            **render,
        )  # fmt: skip
        for line in lines:
            print(line)
        return written
    found = conditional_faces(
        G, attr.classifier, attr.directions, attr.request, n=opts.n, seed=opts.seed,
        shift=opts.conditional.shift, max_draws=opts.conditional.max_draws, **render,
    )  # fmt: skip
    wanted = ", ".join(n if w else f"~{n}" for n, w in attr.request)
    print(
        f"{len(found.seeds)} faces with [{wanted}]: classifier agreement {found.agreement:.1%} "
        f"of {found.drawn} drawn after a {opts.conditional.shift:g}-std shift; "
        f"{found.cost:.2f} seeds drawn per face"
    )
    if len(found.seeds) < opts.n:
        print(f"only {len(found.seeds)} of n={opts.n}: conditional.max_draws was reached")
    return attribute_figures.write_conditional(
        found.images, out_dir, request=attr.request, seed=opts.seed, n=len(found.seeds)
    )


def draw_figure(
    figure: str,
    G: Generator,
    opts: SampleConfig,
    resolution: int,
    psi: float | list[float],
    attr: attribute_figures.AttributeContext | None = None,
) -> list[Path]:
    """Compute one figure with :mod:`stylegan.sampling` and write it; returns the paths."""
    out_dir = Path(opts.out_dir)
    common = {"resolution": resolution, "batch_size": opts.batch_size, "cutoff": opts.cutoff}
    noise, cutoff = opts.noise, opts.cutoff
    if figure == "edit" or (figure == "faces" and opts.attributes):
        return draw_attribute_figure(figure, G, opts, attr, common, psi)
    if figure == "faces":
        seeds = range(opts.seed, opts.seed + opts.n)
        batches = sampling.iter_images(G, seeds, psi=psi, noise_mode=noise, **common)
        return sampling.write_faces(
            batches,
            out_dir,
            seed=opts.seed,
            n=opts.n,
            psi=psi,
            cutoff=cutoff,
            noise_mode=noise,
            save_individual=opts.save_individual,
            grid_max=opts.grid_max,
        )
    if figure == "truncation":
        seeds = opts.truncation.seeds
        psis = [sampling.layer_psi(G, p, resolution) for p in opts.truncation.psis]
        images = sampling.truncation_sweep(G, seeds, psis, noise_mode=noise, **common)
        return sampling.write_truncation(
            images, out_dir, seeds=seeds, psis=psis, cutoff=cutoff, noise_mode=noise
        )
    if figure == "mixing":
        sources, destinations = opts.mixing.sources, opts.mixing.destinations
        written = []
        for spec in opts.mixing.layers:
            layers = sampling.layer_range(spec, G.num_ws_at(resolution))
            images = sampling.style_mixing_grid(
                G, sources, destinations, layers, psi=psi, noise_mode=noise, **common
            )
            written += sampling.write_mixing(images, out_dir, sources=len(sources), layers=spec)
        return written
    if figure == "noise":
        seed = opts.noise_figure.seed
        figs = sampling.noise_figures(G, seed, opts.noise_figure.draws, psi=psi, **common)
        std = sampling.std_image(figs["std"])
        return sampling.write_noise(figs["draws"], std, figs["layers"], out_dir, seed=seed)
    if figure == "interpolation":
        o = opts.interpolation
        frames = sampling.interpolation_frames(
            G, o.seeds, space=o.space, steps=o.steps, psi=psi, noise_mode=noise, **common
        )
        mp4 = o.mp4 and sampling.mp4_available()
        if o.mp4 and not mp4:
            log.info("mp4 skipped: imageio-ffmpeg is not installed (pip install imageio-ffmpeg)")
        return sampling.write_interpolation(
            frames,
            out_dir,
            seeds=o.seeds,
            space=o.space,
            fps=o.fps,
            mp4=mp4,
            psi=psi,
            cutoff=cutoff,
            noise_mode=noise,
        )
    raise AssertionError(f"unhandled figure {figure!r}")  # check_figures lets only FIGURES in


def sample(cfg: DictConfig) -> list[Path]:
    """Load the generator named by ``cfg.ckpt`` and write the requested figures; returns the files
    (and, for ``save_individual``, the folder of single images)."""
    opts = read_options(cfg)
    device = resolve_device(opts.device)
    torch.backends.cudnn.benchmark = False  # the same algorithms every run: reproducible bytes
    torch.backends.cudnn.deterministic = True
    G, info = load_generator(opts.ckpt, device=device)
    res = int(info["resolution"])
    resolve_latents(opts, G)
    # Checks that need the generator, before anything is drawn.
    psi = sampling.layer_psi(G, opts.psi, res)
    for p in opts.truncation.psis if "truncation" in opts.figure else []:
        sampling.layer_psi(G, p, res)
    for spec in opts.mixing.layers if "mixing" in opts.figure else []:
        sampling.layer_range(spec, G.num_ws_at(res))
    attr = None
    if "edit" in opts.figure or ("faces" in opts.figure and opts.attributes):
        attr = attribute_figures.AttributeContext(
            ckpt=opts.ckpt,
            resolution=res,
            attribute=opts.attribute if "edit" in opts.figure else None,
            keep=opts.keep,
            attributes=opts.attributes if "faces" in opts.figure else [],
            classifier=opts.classifier,
            device=device,
        )
    log.info(
        "generator from %s (%s): %dpx, %s images seen, device %s",
        opts.ckpt,
        info["source"],
        res,
        info.get("images_seen"),
        device,
    )
    written: list[Path] = []
    for figure in opts.figure:
        written += draw_figure(figure, G, opts, res, psi, attr)
    for path in written:
        log.info("wrote %s", path)
    return written


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="sample")
def hydra_main(cfg: DictConfig) -> None:
    run_reporting_user_errors(lambda: sample(cfg))


def main() -> None:
    """The command line: config errors and user errors as one line, exit status 2."""
    run_hydra_main(hydra_main)


if __name__ == "__main__":
    main()
