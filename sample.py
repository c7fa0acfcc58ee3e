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

Files land in ``outputs/sample/<date>/<time>/`` (``out_dir=`` to change) with names that say what
they are, e.g. ``faces_seed0_n64_psi0.7.png``; the knobs are documented in ``conf/sample.yaml``.
``sample(cfg)`` is what the command runs; tests call it directly with a composed config.
"""

import logging
from pathlib import Path
from typing import Any

import hydra
import torch
from omegaconf import DictConfig, OmegaConf

from stylegan import sampling
from stylegan.checkpoints import load_generator
from stylegan.cli import resolve_device, run_reporting_user_errors
from stylegan.errors import ConfigError, UserError

log = logging.getLogger("sample")


def _mixing_specs(layers: Any) -> list[Any]:
    """One spec per mixing figure: a list of names draws one figure each."""
    if isinstance(layers, list) and layers and all(isinstance(x, str) for x in layers):
        return layers
    return [layers]


def read_options(cfg: DictConfig) -> dict[str, Any]:
    """Every value of ``cfg`` validated up front (one-line ConfigError), as plain python."""
    if OmegaConf.is_missing(cfg, "ckpt") or not cfg.get("ckpt"):
        raise UserError("ckpt is required: python sample.py ckpt=PATH (last.ckpt or generator.pt)")

    def value(key: str) -> Any:  # cfg[key] (dotted) as plain python: lists, not ListConfig
        node = OmegaConf.select(cfg, key, throw_on_missing=True)
        return OmegaConf.to_container(node, resolve=True) if OmegaConf.is_config(node) else node

    def seeds(key: str, minimum: int = 1) -> list[int]:
        return sampling.check_seeds(value(key), key, minimum=minimum)

    def integer(key: str, minimum: int = 1) -> int:
        return sampling.check_int(value(key), key, minimum=minimum)

    figures = sampling.check_figures(value("figure"))
    out_dir = value("out_dir")
    if not out_dir:
        raise ConfigError("out_dir must be a folder path")
    opts: dict[str, Any] = {
        "ckpt": str(cfg.ckpt),
        "figures": figures,
        "out_dir": Path(out_dir),
        "psi": sampling.check_psi(value("psi")),
        "cutoff": sampling.check_cutoff(value("cutoff")),
        "noise": sampling.check_noise_mode(value("noise")),
        "batch_size": integer("batch_size"),
        "device": resolve_device(value("device")),
    }
    if "faces" in figures:
        opts["n"] = integer("n")
        opts["seed"] = sampling.check_seed(value("seed"))
        opts["save_individual"] = sampling.check_bool(value("save_individual"), "save_individual")
        opts["grid_max"] = integer("grid_max", minimum=0)
        if opts["grid_max"] == 0 and not opts["save_individual"]:
            raise ConfigError("grid_max=0 and save_individual=false: faces would write nothing")
    if "truncation" in figures:
        opts["truncation_seeds"] = seeds("truncation.seeds")
        psis = value("truncation.psis")
        psis = psis if isinstance(psis, list) else [psis]
        if not psis:
            raise ConfigError("truncation.psis must list at least one ψ")
        opts["truncation_psis"] = [sampling.check_psi(p, "truncation.psis") for p in psis]
    if "mixing" in figures:
        opts["mixing_sources"] = seeds("mixing.sources")
        opts["mixing_destinations"] = seeds("mixing.destinations")
        opts["mixing_layers"] = _mixing_specs(value("mixing.layers"))
        for spec in opts["mixing_layers"]:
            sampling.parse_layer_spec(spec)
    if "noise" in figures:
        opts["noise_seed"] = sampling.check_seed(value("noise_figure.seed"), "noise_figure.seed")
        opts["noise_draws"] = integer("noise_figure.draws", minimum=2)
    if "interpolation" in figures:
        opts["interp_space"] = sampling.check_space(value("interpolation.space"))
        opts["interp_seeds"] = seeds("interpolation.seeds", minimum=2)
        opts["interp_steps"] = integer("interpolation.steps")
        fps = value("interpolation.fps")
        if isinstance(fps, bool) or not isinstance(fps, int | float) or not 0 < fps <= 100:
            raise ConfigError(f"interpolation.fps must be a number in (0, 100], got {fps!r}")
        opts["interp_fps"] = float(fps)
        opts["interp_mp4"] = sampling.check_bool(value("interpolation.mp4"), "interpolation.mp4")
    return opts


def sample(cfg: DictConfig) -> list[Path]:
    """Load the generator named by ``cfg.ckpt`` and write the requested figures; returns the files
    (and, for ``save_individual``, the folder of single images)."""
    opts = read_options(cfg)
    torch.backends.cudnn.benchmark = False  # the same algorithms every run: reproducible bytes
    torch.backends.cudnn.deterministic = True
    G, info = load_generator(opts["ckpt"], device=opts["device"])
    res = int(info["resolution"])
    # Checks that need the generator, before anything is drawn.
    psi = sampling.layer_psi(G, opts["psi"], res)
    psis = [sampling.layer_psi(G, p, res) for p in opts.get("truncation_psis", [])]
    num_ws = G.num_ws_at(res)
    for spec in opts.get("mixing_layers", []):
        sampling.layer_range(spec, num_ws)
    log.info(
        "generator from %s (%s): %dpx, %s images seen, device %s",
        opts["ckpt"],
        info["source"],
        res,
        info.get("images_seen"),
        opts["device"],
    )
    out_dir: Path = opts["out_dir"]
    common = {"resolution": res, "batch_size": opts["batch_size"], "cutoff": opts["cutoff"]}
    noise = opts["noise"]
    written: list[Path] = []
    for figure in opts["figures"]:
        if figure == "faces":
            written += sampling.write_faces(
                G,
                out_dir,
                seed=opts["seed"],
                n=opts["n"],
                psi=psi,
                noise_mode=noise,
                save_individual=opts["save_individual"],
                grid_max=opts["grid_max"],
                **common,
            )
        elif figure == "truncation":
            written += sampling.write_truncation(
                G, out_dir, seeds=opts["truncation_seeds"], psis=psis, noise_mode=noise, **common
            )
        elif figure == "mixing":
            for spec in opts["mixing_layers"]:
                written += sampling.write_mixing(
                    G,
                    out_dir,
                    sources=opts["mixing_sources"],
                    destinations=opts["mixing_destinations"],
                    layers=spec,
                    psi=psi,
                    noise_mode=noise,
                    **common,
                )
        elif figure == "noise":
            written += sampling.write_noise(
                G, out_dir, seed=opts["noise_seed"], draws=opts["noise_draws"], psi=psi, **common
            )
        elif figure == "interpolation":
            written += sampling.write_interpolation(
                G,
                out_dir,
                seeds=opts["interp_seeds"],
                space=opts["interp_space"],
                steps=opts["interp_steps"],
                fps=opts["interp_fps"],
                mp4=opts["interp_mp4"],
                psi=psi,
                noise_mode=noise,
                **common,
            )
    for path in written:
        log.info("wrote %s", path)
    return written


@hydra.main(version_base="1.3", config_path="conf", config_name="sample")
def main(cfg: DictConfig) -> None:
    run_reporting_user_errors(lambda: sample(cfg))


if __name__ == "__main__":
    main()
