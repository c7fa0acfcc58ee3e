"""The projector's optimisation: find the w (``mode="w"``) or the ws (``mode="w_plus"``) and the
per-layer noise maps whose image is closest to a target under a distance.

A port of NVlabs stylegan2-ada-pytorch ``projector.py`` (``project()``), formula for formula:

- start: the generator's tracked ``w_avg`` (the mean of the samples when it was never tracked);
  ``w_std = sqrt(sum((w_i - mean)^2) / n)`` over ``w_avg_samples`` mapped z's (seed 123);
- step ``i`` of ``n``, ``t = i / n``:
  ``lr = lr0 * (0.5 - 0.5 cos(pi * min(1, (1 - t) / rampdown))) * min(1, t / rampup)``;
  the w is perturbed by ``N(0, 1) * w_std * noise_factor * max(0, 1 - t / noise_ramp)^2``;
- loss ``= dist + regularize_noise_weight * reg``, with the noise regularisation of
  :func:`noise_regularization` (squared autocorrelation at shift 1 along x and y, over each map
  and its 2x2-average pyramid down to 8x8);
- Adam(betas 0.9, 0.999) over the w and every noise map; after each step every noise map is
  normalised to zero mean and unit variance.

The noise maps (one per :func:`~stylegan.sampling.noise_modules` layer, drawn ``N(0, 1)``) enter
the generator through :func:`stylegan.sampling.seeds.added_noise` as the sampler adds its own
per-seed noise, so a projection renders in ``sample.py`` exactly as it was optimised.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor
from tqdm import tqdm

from stylegan.errors import ConfigError
from stylegan.networks import Generator
from stylegan.sampling.seeds import added_noise, noise_modules

MODES = ("w", "w_plus")
W_STD_SEED = 123  # projector.py: np.random.RandomState(123) for the w statistics
MIN_REG_SIZE = 8  # projector.py: the pyramid of a noise map stops at 8x8


@dataclass
class Schedule:
    """The hyper-parameters of projector.py, with its defaults (``conf/project.yaml``)."""

    steps: int = 1000  # optimisation steps (num_steps)
    w_avg_samples: int = 10000  # mapped z's for w_std
    initial_lr: float = 0.1  # initial_learning_rate
    initial_noise_factor: float = 0.05  # w perturbation at step 0, in units of w_std
    lr_rampdown_length: float = 0.25  # share of the steps of the cosine ramp-down at the end
    lr_rampup_length: float = 0.05  # share of the steps of the linear ramp-up at the start
    noise_ramp_length: float = 0.75  # share of the steps over which the w perturbation fades
    regularize_noise_weight: float = 1e5  # weight of noise_regularization in the loss
    optimize_noise: bool = True  # False: the noise maps stay zero (no noise at all)

    def check(self) -> Schedule:
        """One-line ConfigError for a value the formulas cannot take."""
        if self.steps < 1:
            raise ConfigError(f"steps must be an integer >= 1, got {self.steps}")
        if self.w_avg_samples < 2:
            raise ConfigError(f"w_avg_samples must be >= 2, got {self.w_avg_samples}")
        for name in ("lr_rampdown_length", "lr_rampup_length", "noise_ramp_length"):
            value = getattr(self, name)
            if not 0 < value <= 1:
                raise ConfigError(f"{name} must be in (0, 1], got {value}")
        for name in ("initial_lr", "initial_noise_factor", "regularize_noise_weight"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be >= 0, got {getattr(self, name)}")
        return self

    def learning_rate(self, step: int) -> float:
        """projector.py's lr at ``step``: linear ramp-up, cosine ramp-down (0 at step 0)."""
        t = step / self.steps
        ramp = min(1.0, (1.0 - t) / self.lr_rampdown_length)
        ramp = 0.5 - 0.5 * math.cos(ramp * math.pi)
        ramp = ramp * min(1.0, t / self.lr_rampup_length)
        return self.initial_lr * ramp

    def w_noise_scale(self, step: int, w_std: float) -> float:
        """projector.py's ``w_std * initial_noise_factor * max(0, 1 - t / noise_ramp_length)^2``."""
        t = step / self.steps
        return w_std * self.initial_noise_factor * max(0.0, 1.0 - t / self.noise_ramp_length) ** 2


def check_mode(mode: str) -> str:
    """``w`` (one w for every layer, as projector.py) or ``w_plus`` (one w per layer)."""
    if mode not in MODES:
        raise ConfigError(f"mode must be w or w_plus, got {mode!r}")
    return mode


def noise_regularization_per_face(noise_maps: Sequence[Tensor]) -> Tensor:
    """projector.py's noise regulariser of each face, [N]: for each map [N, 1, H, W] and each
    level of its 2x2 average-pooled pyramid (stopping after the level of side <= 8), add the
    squared mean of ``noise * roll(noise, 1)`` along x and along y (circular shifts), the means
    taken over each face's map alone."""
    if not noise_maps:
        return torch.zeros(1)
    reg = torch.zeros(noise_maps[0].shape[0], device=noise_maps[0].device)
    for noise in noise_maps:
        noise = noise.reshape(-1, 1, *noise.shape[-2:])
        while True:
            reg = reg + (noise * torch.roll(noise, shifts=1, dims=3)).mean(dim=(1, 2, 3)) ** 2
            reg = reg + (noise * torch.roll(noise, shifts=1, dims=2)).mean(dim=(1, 2, 3)) ** 2
            if noise.shape[2] <= MIN_REG_SIZE:
                break
            noise = F.avg_pool2d(noise, kernel_size=2)
    return reg


def noise_regularization(noise_maps: Sequence[Tensor]) -> Tensor:
    """projector.py's noise regulariser of one face's maps [1, 1, H, W] (a scalar; the sum over
    the faces for maps [N, 1, H, W])."""
    return noise_regularization_per_face(noise_maps).sum()


@torch.no_grad()
def normalize_noise_(noise_maps: Sequence[Tensor]) -> None:
    """projector.py after each step: every face's map to zero mean, unit mean square (in place)."""
    for buf in noise_maps:
        dims = tuple(range(1, buf.ndim))
        buf -= buf.mean(dim=dims, keepdim=True)
        buf *= buf.square().mean(dim=dims, keepdim=True).rsqrt()


@torch.no_grad()
def w_statistics(
    generator: Generator, samples: int, *, batch_size: int = 1000
) -> tuple[Tensor, float]:
    """(mean w [w_dim], w_std): projector.py's statistics of ``samples`` mapped z's (seed 123).

    ``w_std`` is the root of the summed squared distance to the mean over the samples, divided
    by their count (a distance, not a per-dimension std)."""
    device = next(generator.parameters()).device
    gen = torch.Generator().manual_seed(W_STD_SEED)
    ws = []
    for start in range(0, samples, batch_size):
        z = torch.randn(min(batch_size, samples - start), generator.z_dim, generator=gen)
        ws.append(generator.mapping(z.to(device)).float())
    w = torch.cat(ws)  # [n, w_dim]
    mean = w.mean(dim=0)
    std = float(((w - mean).square().sum() / samples).sqrt())
    return mean, std


def start_w(generator: Generator, sample_mean: Tensor) -> Tensor:
    """The w the optimisation starts from: the tracked ``w_avg``, or the samples' mean when the
    generator never tracked one (all zeros: an untrained or hand-built generator)."""
    w_avg = generator.w_avg.detach().float()
    return sample_mean.clone() if bool((w_avg == 0).all()) else w_avg.clone()


@dataclass
class Result:
    """What :func:`optimize` found for one face: ws [num_ws, w_dim], noise maps [1, 1, r, r] per
    layer, the distance of the final image, per-step distances and optionally recorded frames."""

    ws: Tensor
    noise: list[Tensor]
    image: Tensor  # [3, r, r] in about [-1, 1], the final projection (no w perturbation)
    distance: float
    history: list[float] = field(default_factory=list)
    frames: Tensor | None = None  # [F, 3, r, r] images every ``record_every`` steps
    seed: int = 0  # the face's random draws


def render_projection(
    generator: Generator, ws: Tensor, noise: Sequence[Tensor], resolution: int
) -> Tensor:
    """Image [N, 3, r, r] of ws [N, num_ws, w_dim] with the noise maps ([N or 1, 1, r, r]) added
    to each layer (differentiable in both: the projector's forward)."""
    modules = noise_modules(generator)[: generator.num_ws_at(resolution)]
    with added_noise(modules, list(noise)[: len(modules)]):
        return generator.synthesis(ws, resolution=resolution, noise_mode="none")


def optimize(
    generator: Generator,
    target: Tensor,
    distance: Callable[[Tensor, object], Tensor],
    prepared: object,
    *,
    mode: str,
    resolution: int,
    schedule: Schedule,
    seed: int | Sequence[int] = 0,
    progress: Callable[[int, int], None] | None = None,
    show_bar: bool = False,
    record_every: int = 0,
) -> list[Result]:
    """Run projector.py's loop on the faces ``target`` [N, 3, r, r] (in [-1, 1]) at once, one
    :class:`Result` per face. ``distance(images, prepared) -> [N]`` compares each image with its
    prepared target (``prepared`` is ``distance.prepare(target)``).

    The faces are optimised side by side, not together: each has its own w (or ws) and noise
    maps, its own random draws (a CPU generator seeded with ``seed`` or its own entry of
    a list of seeds, so a face projects alike on
    any device and in any batch), its own noise regularisation and normalisation, and Adam acts
    element by element, so a batch only shares the forward and backward passes."""
    check_mode(mode)
    device = target.device
    faces = int(target.shape[0])
    seeds = [int(seed)] * faces if isinstance(seed, int) else [int(s) for s in seed]
    if len(seeds) != faces:
        raise ValueError(f"{len(seeds)} seeds for {faces} faces")
    gens = [torch.Generator().manual_seed(s) for s in seeds]
    sample_mean, w_std = w_statistics(generator, schedule.w_avg_samples)
    w0 = start_w(generator, sample_mean).to(device)
    num_ws, active = generator.num_ws, generator.num_ws_at(resolution)
    layers = num_ws if mode == "w_plus" else 1
    w_opt = w0[None, None, :].repeat(faces, layers, 1).requires_grad_(True)  # [N, 1 | L, w_dim]
    sides = [m.resolution for m in noise_modules(generator)[:active]]
    if schedule.optimize_noise:
        # each face draws its maps in layer order from its own generator, as a lone face would
        drawn = [[torch.randn(1, 1, r, r, generator=g) for r in sides] for g in gens]
        noise = [torch.cat([maps[i] for maps in drawn]) for i in range(len(sides))]
    else:
        noise = [torch.zeros(faces, 1, r, r) for r in sides]
    noise = [n.to(device).requires_grad_(schedule.optimize_noise) for n in noise]
    params = [w_opt, *noise] if schedule.optimize_noise else [w_opt]
    optimizer = torch.optim.Adam(params, betas=(0.9, 0.999), lr=schedule.initial_lr)
    history: list[Tensor] = []
    frames: list[Tensor] = []
    desc = f"project {mode}" + (f" ({faces} faces)" if faces > 1 else "")
    bar = tqdm(total=schedule.steps, unit="step", desc=desc, disable=not show_bar)
    with bar:
        for step in range(schedule.steps):
            lr = schedule.learning_rate(step)
            for group in optimizer.param_groups:
                group["lr"] = lr
            scale = schedule.w_noise_scale(step, w_std)
            w_noise = torch.cat([torch.randn(1, *w_opt.shape[1:], generator=g) for g in gens])
            w = w_opt + w_noise.to(device) * scale
            ws = w.expand(faces, num_ws, -1) if layers == 1 else w
            images = render_projection(generator, ws, noise, resolution)
            dist = distance(images, prepared)  # [N]
            loss = dist.sum()
            if schedule.optimize_noise:
                reg = noise_regularization_per_face(noise).sum()
                loss = loss + reg * schedule.regularize_noise_weight
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if schedule.optimize_noise:
                normalize_noise_(noise)
            history.append(dist.detach().float().cpu())
            if record_every and step % record_every == 0:
                frames.append(images.detach().cpu())
            bar.set_postfix(dist=f"{float(history[-1].mean()):.4f}", refresh=False)
            bar.update(1)
            if progress is not None:
                progress(step + 1, schedule.steps)
    with torch.no_grad():
        final_ws = w_opt.detach().expand(faces, num_ws, -1) if layers == 1 else w_opt.detach()
        noise_out = [n.detach().clone() for n in noise]
        image = render_projection(generator, final_ws, noise_out, resolution)
        final = distance(image, prepared).float().cpu()
    if record_every:
        frames.append(image.cpu())
    steps = torch.stack(history) if history else torch.zeros(0, faces)  # [steps, N]
    video = torch.stack(frames, dim=1) if frames else None  # [N, F, 3, r, r]
    return [
        Result(
            ws=final_ws[i].clone(),
            noise=[n[i : i + 1].cpu() for n in noise_out],
            image=image[i].cpu(),
            distance=float(final[i]),
            history=steps[:, i].tolist(),
            frames=video[i] if video is not None else None,
            seed=seeds[i],
        )
        for i in range(faces)
    ]
