"""What the explorer page shows, as tensors and files: faces, style mixing, attribute edits.

Owns :class:`Explorer` (the generator, loaded once, with its attribute directions) and the
:class:`View` each control renders. Every image is computed with the functions ``sample.py``
uses (:mod:`stylegan.sampling`, :mod:`stylegan.attributes`), so a view's pixels are the bytes
``sample.py`` writes for the same seed and settings and the same ``batch_size``; every file goes
to the run folder through the atomic writers. Nothing here knows about Gradio.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image
from torch import Tensor

from stylegan import sampling
from stylegan.attributes import Directions, edit_direction, edited_ws, load_directions
from stylegan.errors import ConfigError, UserError
from stylegan.imaging import grid_image, save_grid, to_uint8
from stylegan.networks import Generator
from stylegan.networks.generator import check_cutoff, check_psi
from stylegan.projection import generator_fingerprint, save_latent

MIXING_RANGES = ("coarse", "middle", "fine")  # the paper's Fig. 3 rows, by layer resolution
Source = sampling.Source  # a seed, or a projected face (FixedLatent: its ws and noise maps)


@dataclass(frozen=True)
class Settings:
    """The controls every view shares: truncation ψ and cutoff (None = every layer), the noise
    mode and the resolution to render at (one of :meth:`Explorer.resolutions`)."""

    psi: float = 1.0
    cutoff: int | None = None
    noise: str = "random"
    resolution: int = 0  # 0 = the resolution the generator was trained to


@dataclass
class View:
    """One rendered view: ``images`` [N, C, r, r] float (CPU) laid out ``nrow`` per row,
    ``ws`` [N, num_ws, w_dim] and ``noise_seeds`` (one per image) of each, the file ``name``
    (without suffix, as sample.py names its files) and the generator's ``seconds``.
    ``latent`` is the image whose latent the page offers (the seed's face, the mixed face)."""

    images: Tensor
    ws: Tensor
    sources: list[Source]  # per image: the seed or the projected face (whose noise it has)
    nrow: int
    name: str
    seconds: float
    settings: Settings
    latent: int = 0

    def picture(self) -> Image.Image:
        """The grid as sample.py's ``save_grid`` draws it."""
        return grid_image(self.images, nrow=self.nrow)


class Explorer:
    """A generator loaded once, with what the page needs to know about it."""

    def __init__(
        self,
        generator: Generator,
        info: Mapping,
        *,
        ckpt: str | Path,
        batch_size: int = 32,
        max_grid: int = 8,
    ) -> None:
        self.G = generator
        self.trained = int(info["resolution"])
        self.info = dict(info)
        self.ckpt = Path(ckpt)
        self.batch_size = sampling.check_batch_size(batch_size)
        self.max_grid = max_grid
        self.fingerprint = generator_fingerprint(generator)  # what a latent file records
        self.directions: Directions | None = None
        try:
            self.directions = load_directions(ckpt)
        except UserError:  # no directions stored: the page hides the attribute sliders
            self.directions = None

    # -- what the controls may take ------------------------------------------------------------

    def resolutions(self) -> list[int]:
        """Resolutions to render at: the built ones up to what it was trained to (8px and up)."""
        built = self.G.synthesis.resolutions
        return [r for r in built if 8 <= r <= self.trained] or [self.trained]

    def mixing_ranges(self, resolution: int) -> list[str]:
        """The ranges of :data:`MIXING_RANGES` that have layers at ``resolution``."""
        num_ws = self.G.num_ws_at(resolution)
        found = []
        for name in MIXING_RANGES:
            try:
                sampling.layer_range(name, num_ws)
            except ConfigError:
                continue
            found.append(name)
        return found

    def editable(self) -> list[str]:
        """Attributes with a direction (an attribute the classifier never split has none)."""
        if self.directions is None:
            return []
        d = self.directions
        return [a for i, a in enumerate(d.attributes) if float(d.normals[i].norm()) > 0]

    def check(self, settings: Settings) -> Settings:
        """``settings`` with ψ, cutoff, noise and resolution checked (one-line ConfigError)."""
        res = settings.resolution or self.trained
        if res not in self.resolutions():
            raise ConfigError(f"resolution must be one of {self.resolutions()}, got {res}")
        check_cutoff(settings.cutoff)
        return Settings(
            psi=float(check_psi(settings.psi)),
            cutoff=settings.cutoff,
            noise=sampling.check_noise_mode(settings.noise),
            resolution=res,
        )

    def _render(self, ws: Tensor, sources: Sequence[Source], s: Settings) -> Tensor:
        """Each row with its source's noise: a seed's own, or the maps a projection optimised."""
        return sampling.render_ws(
            self.G, ws, resolution=s.resolution, noise_mode=s.noise, batch_size=self.batch_size,
            **sampling.noise_args(sources),
        )  # fmt: skip

    def _ws(self, sources: Sequence[Source], s: Settings, *, truncate: bool = True) -> Tensor:
        """ws [N, num_ws, w_dim]: seeds mapped and truncated as sample.py maps them, projected
        faces truncated with the same ψ and cutoff (:func:`stylegan.sampling.source_ws`)."""
        psi, cutoff = (s.psi, s.cutoff) if truncate else (1.0, None)
        return sampling.source_ws(self.G, sources, psi=psi, cutoff=cutoff,
                                  batch_size=self.batch_size)  # fmt: skip

    # -- the views -----------------------------------------------------------------------------

    def faces(self, seed: int, grid: int, settings: Settings) -> View:
        """Seeds seed .. seed + grid² - 1: ``sample.py n=grid² seed=seed`` (figure=faces)."""
        s = self.check(settings)
        seed = sampling.check_seed(int(seed))
        if not 1 <= grid <= self.max_grid:
            raise ConfigError(f"grid must be 1 to {self.max_grid} faces per side, got {grid}")
        n = grid * grid
        seeds = list(range(seed, seed + n))
        start = time.perf_counter()
        ws = self._ws(seeds, s)
        images = self._render(ws, seeds, s)
        seconds = time.perf_counter() - start
        name = sampling.faces_name(seed=seed, n=n, psi=s.psi, cutoff=s.cutoff, noise_mode=s.noise)
        return View(images, ws, seeds, grid, name, seconds, s)

    def mixing(self, source: Source, destination: Source, layers: str, settings: Settings) -> View:
        """[source, destination, destination with the source's ``layers`` styles]: one row of
        ``sample.py figure=mixing mixing.sources=[source] mixing.destinations=[destination]``
        (a source may be a projected face)."""
        s = self.check(settings)
        pair = [_checked(source), _checked(destination)]
        indices = sampling.layer_range(layers, self.G.num_ws_at(s.resolution))
        start = time.perf_counter()
        ws_src, ws_dst = self._ws(pair, s).split(1)
        ws = torch.cat([ws_src, ws_dst, sampling.mix_layers(ws_src, ws_dst, indices)])
        sources = [pair[0], pair[1], pair[1]]  # the mixed face keeps the destination's noise
        images = self._render(ws, sources, s)
        seconds = time.perf_counter() - start
        name = (
            f"mixing_{sampling.layer_label(layers)}_{_label(pair[0])}-into-{_label(pair[1])}_"
            f"{sampling.psi_label(s.psi)}"
        )
        return View(images, ws, sources, 3, name, seconds, s, latent=2)

    def edit(
        self,
        source: Source,
        strengths: Mapping[str, float],
        keep: Sequence[str],
        settings: Settings,
    ) -> View:
        """The face of ``source`` (a seed or a projected face) moved by each attribute's
        strength (in stds, as ``strengths=`` of ``sample.py figure=edit``), each direction
        orthogonal to the ``keep`` attributes'. For a seed and one non-zero strength it is that
        cell of ``sample.py figure=edit attribute=A keep=[...]``."""
        if self.directions is None:
            raise UserError(f"{self.ckpt} has no attribute directions (python attributes.py ...)")
        s = self.check(settings)
        source = _checked(source)
        moves = []
        for name, strength in strengths.items():
            if float(strength) != 0:
                direction, scale = edit_direction(self.directions, name, keep)
                moves.append((direction, float(strength) * scale))
        start = time.perf_counter()
        ws = edited_ws(
            self.G, self._ws([source], s, truncate=False), moves, psi=s.psi, cutoff=s.cutoff
        )
        images = self._render(ws, [source], s)
        seconds = time.perf_counter() - start
        changed = [f"{n}{float(v):+g}" for n, v in strengths.items() if float(v) != 0]
        kept = f"_keep-{'-'.join(keep)}" if keep and changed else ""
        name = (
            f"edit_{'_'.join(changed) or 'none'}{kept}_{_label(source)}_{sampling.psi_label(s.psi)}"
        )
        return View(images, ws, [source], 1, name, seconds, s)

    def latent_noise(self, view: View) -> list[Tensor]:
        """The noise maps ([1, 1, r_i, r_i] per layer used) the view's latent image was drawn
        with, so its latent file renders that image again."""
        source, s = view.sources[view.latent], view.settings
        modules = sampling.noise_modules(self.G)[: self.G.num_ws_at(s.resolution)]
        if s.noise == "const":
            return [m.noise_const.detach().cpu()[:1] for m in modules]
        if s.noise == "none":
            return [torch.zeros(1, 1, m.resolution, m.resolution) for m in modules]
        if isinstance(source, sampling.FixedLatent):
            given = list(source.noise or ())  # zeros past its end, as render_ws draws it
            return [given[i].cpu() if i < len(given) else torch.zeros(1, 1, m.resolution,
                    m.resolution) for i, m in enumerate(modules)]  # fmt: skip
        return sampling.noise_for_seeds(self.G, [source], resolution=s.resolution)


def _checked(source: Source) -> Source:
    return source if isinstance(source, sampling.FixedLatent) else sampling.check_seed(int(source))


def _label(source: Source) -> str:
    return source.name if isinstance(source, sampling.FixedLatent) else f"seed{source}"


def write_latent(explorer: Explorer, view: View, folder: Path) -> Path:
    """``<folder>/<view.name>.pt``: the latent file of :mod:`stylegan.projection` (ws, noise,
    meta) of the view's latent image; ``project.py``'s readers load it."""
    G, settings = explorer.G, view.settings
    meta = {
        "w_dim": G.w_dim,
        "num_ws": G.num_ws,
        "mode": "w_plus",
        "resolution": settings.resolution,
        "generator": explorer.fingerprint,
        "source": "explore.py",
        "view": view.name,
        "psi": settings.psi,
        "cutoff": settings.cutoff,
        "noise_mode": settings.noise,
    }
    return save_latent(
        Path(folder) / f"{view.name}.pt",
        view.ws[view.latent].cpu(),
        explorer.latent_noise(view),
        meta,
    )


def write_png(view: View, folder: Path) -> Path:
    """``<folder>/<view.name>.png``: the grid through sample.py's ``save_grid`` (same bytes)."""
    return save_grid(view.images, Path(folder) / f"{view.name}.png", nrow=view.nrow)


def uint8_images(view: View) -> Tensor:
    """The view's images as uint8 [N, C, r, r], as every PNG of them holds."""
    return to_uint8(view.images)
