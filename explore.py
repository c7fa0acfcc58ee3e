"""A local web page to explore a trained generator: faces, truncation, noise, style mixing,
attribute edits, and downloads of the image and its latent.

Examples:
    python explore.py ckpt=outputs/train/<date>/<time>/generator.pt     # http://127.0.0.1:7860
    python explore.py ckpt=.../last.ckpt server.port=8000 batch_size=1
    ssh -L 7860:127.0.0.1:7860 trainer   # then open http://127.0.0.1:7860 on your own machine

The page binds 127.0.0.1 unless ``server.host`` says otherwise; everything it writes goes to
``outputs/explore/<date>/<time>/``. The knobs are documented in ``conf/explore.yaml``.
``explore(cfg, block=False)`` is what the command runs; tests call it and get the server back.
"""

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

# Only light modules here: the address answers (stylegan.loading_page) before torch and Gradio
# are imported, inside explore().
from stylegan.cli import run_hydra_main, run_reporting_user_errors
from stylegan.config import ExploreConfig
from stylegan.errors import ConfigError, UserError
from stylegan.loading_page import LoadingPage

CONF_DIR = str(Path(__file__).resolve().parent / "conf")

log = logging.getLogger("explore")


@dataclass
class Served:
    """A running page: the Gradio app, its address and the run folder."""

    demo: object
    url: str
    run_dir: Path

    def close(self) -> None:
        self.demo.close()


def read_server_options(cfg: DictConfig) -> ExploreConfig:
    """``cfg`` as plain values, with what serving the address needs checked (one-line errors);
    imports nothing heavy, so it runs before the loading page starts."""
    if OmegaConf.is_missing(cfg, "ckpt") or not cfg.get("ckpt"):
        raise UserError("ckpt is required: python explore.py ckpt=PATH (last.ckpt or generator.pt)")
    opts: ExploreConfig = OmegaConf.to_object(cfg)
    if not opts.out_dir:
        raise ConfigError("out_dir must be a folder path")
    if opts.server.port is not None and not 0 < opts.server.port < 65536:
        raise ConfigError(f"server.port must be 1 to 65535 or null, got {opts.server.port}")
    return opts


def read_options(cfg: DictConfig) -> ExploreConfig:
    """``cfg`` as plain values, each checked before anything is loaded (one-line ConfigError)."""
    return check_options(read_server_options(cfg))


def check_options(opts: ExploreConfig) -> ExploreConfig:
    """The page's options checked (one-line ConfigError); ``start.noise`` and
    ``projection.mode`` normalised."""
    from stylegan import sampling
    from stylegan.networks.generator import check_cutoff, check_psi
    from stylegan.projection import check_mode, parse_distance

    sampling.check_batch_size(opts.batch_size)
    start = opts.start
    sampling.check_seeds([start.seed, *start.mixing], "start seeds")
    if len(start.mixing) != 2:
        raise ConfigError(
            f"start.mixing must be two seeds [source, destination], got {start.mixing}"
        )
    if not 1 <= start.grid <= start.max_grid:
        raise ConfigError(
            f"start.grid must be 1 to start.max_grid ({start.max_grid}), got {start.grid}"
        )
    check_psi(start.psi, "start.psi")
    check_cutoff(start.cutoff)
    start.noise = sampling.check_noise_mode(start.noise)
    opts.projection.mode = check_mode(opts.projection.mode)
    parse_distance(opts.projection.distance)
    if opts.projection.steps < 1:
        raise ConfigError(f"projection.steps must be >= 1, got {opts.projection.steps}")
    if opts.upload.max_bytes < 1 or opts.upload.max_pixels < 1:
        raise ConfigError("upload.max_bytes and upload.max_pixels must be >= 1")
    return opts


def explore(cfg: DictConfig, *, block: bool = True) -> Served:
    """Answer the address at once with a loading page, then load the generator once, build the
    page and serve it there instead; ``block=False`` returns once the page is served."""
    opts = read_server_options(cfg)
    loading = open_address(opts.server.host, opts.server.port)
    print(f"explorer at {loading.url}: loading {opts.ckpt} ...", flush=True)
    try:
        return serve(check_options(opts), loading, block=block)
    finally:
        loading.close()  # on success already closed; on an error the address is freed


def open_address(host: str, port: int | None) -> LoadingPage:
    """The loading page on ``host:port``; a taken port or a foreign host is one line."""
    try:
        return LoadingPage(host, port)
    except OSError as exc:
        where = f"{host}:{port if port is not None else 'a free port from 7860'}"
        raise cannot_serve(where, exc) from None


def cannot_serve(where: str, exc: OSError) -> UserError:
    """The one line for an address that cannot be served (taken port, foreign host)."""
    return UserError(
        f"cannot serve on {where} ({str(exc).splitlines()[0]}): pass another "
        "server.port= (or server.port=null for the first free one)"
    )


def serve(opts: ExploreConfig, loading: LoadingPage, *, block: bool) -> Served:
    """Build the page and serve it on the loading page's port, which it takes over."""
    import torch

    from stylegan.checkpoints import load_generator
    from stylegan.cli import resolve_device

    device = resolve_device(opts.device)
    torch.backends.cudnn.benchmark = False  # sample.py's settings: the same bytes
    torch.backends.cudnn.deterministic = True
    run_dir = Path(opts.out_dir).resolve()
    # Before Gradio is imported: its upload cache goes to the run folder, and it calls no one.
    os.environ["GRADIO_TEMP_DIR"] = str(run_dir / "gradio")
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    from stylegan.explorer import Explorer, PageDefaults, ProjectionOptions, build_page

    G, info = load_generator(opts.ckpt, device=device)
    explorer = Explorer(
        G, info, ckpt=opts.ckpt, batch_size=opts.batch_size, max_grid=opts.start.max_grid
    )
    s = opts.start
    defaults = PageDefaults(
        seed=s.seed,
        grid=s.grid,
        psi=float(s.psi),
        cutoff=s.cutoff,
        noise=s.noise,
        mixing=tuple(s.mixing),
    )
    p, u = opts.projection, opts.upload
    projection = ProjectionOptions(
        mode=p.mode,
        steps=p.steps,
        distance=p.distance,
        max_bytes=u.max_bytes,
        max_pixels=u.max_pixels,
    )
    demo = build_page(explorer, run_dir, defaults=defaults, projection=projection)
    demo.queue(default_concurrency_limit=1)
    host, port = opts.server.host, loading.port
    launch = {
        "server_name": host, "server_port": port, "share": False,
        "prevent_thread_lock": True, "quiet": True, "show_error": False, "ssr_mode": False,
        "allowed_paths": [str(run_dir / "images")], "max_file_size": opts.upload.max_bytes,
        "css": CSS_PAGE,
    }  # fmt: skip
    # Gradio probes its own address with httpx, which logs every request at INFO under Hydra.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    loading.close()  # the port is free for Gradio; the loading page's script keeps polling it
    for attempt in range(LAUNCH_ATTEMPTS):
        try:
            demo.launch(**launch)
            break
        except OSError as exc:  # another process took the port in the moment it was free
            raise cannot_serve(f"{host}:{port}", exc) from None
        except ValueError as exc:
            # Gradio probes its own address once, 3 s at most, right after starting; on a busy
            # machine that probe can fail although the server runs. Close it and start again.
            if "localhost is not accessible" not in str(exc) or attempt + 1 == LAUNCH_ATTEMPTS:
                raise
            log.info("Gradio's start-up probe of %s failed; starting it again", host)
            demo.close()
    url = demo.local_url
    log.info(
        "generator %s: %dpx, %s images seen, device %s",
        opts.ckpt,
        explorer.trained,
        info.get("images_seen"),
        device,
    )
    print(f"explorer at {url} (run folder {run_dir}); Ctrl+C stops it", flush=True)
    served = Served(demo, url, run_dir)
    if block:
        try:
            demo.block_thread()
        finally:
            served.close()
    return served


LAUNCH_ATTEMPTS = 3
CSS_PAGE = "img { image-rendering: pixelated; }"  # small faces scaled up stay sharp


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="explore")
def hydra_main(cfg: DictConfig) -> None:
    run_reporting_user_errors(lambda: explore(cfg))


def main() -> None:
    """The command line: config errors and user errors as one line, exit status 2."""
    run_hydra_main(hydra_main)


if __name__ == "__main__":
    main()
