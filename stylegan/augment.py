"""Differentiable augmentation of everything the discriminator sees (StyleGAN2-ADA, DiffAugment).

Owns the augmentation pipeline and its strength ``p``. With few training images (CelebA's 9,000
here, or a user's few thousand) D memorises the reals and training collapses; augmenting every
image D sees (reals and fakes, in the D step, the G step and inside the gradient penalties) with
a probability ``p`` below the point where augmentations leak into G's output prevents it
(Karras et al. 2020). Flips are kornia's (``kornia.augmentation``); 90-degree rotation, integer
translation, colour (kornia's ``kornia.enhance`` functions) and cutout are modules here (below),
whose random parameters are drawn on the images' device: kornia's ``ColorJiggle`` and
``RandomErasing`` copied theirs to the host and back at every call (a blocking copy each way on a
GPU). Each is applied to a sample with probability ``p`` through a per-sample mask, so ``p`` stays
a tensor and adjusting it never waits for the device:

- ``ada``: ``p`` follows the overfitting heuristic ``r_t = E[sign(D(real))]``: every ``interval``
  D steps it moves towards ``target`` by ``batch × interval / (speed_kimg × 1000)`` (so it can go
  from 0 to 1 in ``speed_kimg`` thousand images). Under DDP the sums are all-reduced first.
- ``diffaugment`` (Zhao et al. 2020): a fixed ``p`` (1 by default), no tuning.

``p`` and the ``r_t`` accumulators are buffers: they are in every checkpoint and a resumed run
continues with the same strength. A run may also turn augmentation on or off when it resumes
(``adapt_resumed_state``): from a checkpoint trained without it, ``p`` starts at ``initial_p``.
Images are in [-1, 1]; colour transforms run in [0, 1].
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable

import kornia.augmentation as K
import kornia.enhance as KE
import torch
import torch.distributed as dist
from torch import Tensor, nn

from stylegan.errors import ConfigError

log = logging.getLogger(__name__)

MODES = ("ada", "diffaugment")


# ---------------------------------------------------------------------------- exact pixel moves
# Whole-pixel moves as index operations: exact, twice differentiable on any torch (kornia's warps
# go through grid_sample, whose double backward R1/GP need and older releases lack), and drawn
# on the images' device, so no parameter crosses from the host.
class Rotate90(nn.Module):
    """Each sample rotated by 90, 180 or 270 degrees (uniformly), as ADA's rotate90."""

    def forward(self, x: Tensor) -> Tensor:  # [N, C, H, H]
        k = torch.randint(1, 4, (x.shape[0], 1, 1, 1), device=x.device)
        rotated = [torch.rot90(x, times, dims=(2, 3)) for times in (1, 2, 3)]
        return torch.where(k == 1, rotated[0], torch.where(k == 2, rotated[1], rotated[2]))


def _reflect(index: Tensor, size: int) -> Tensor:
    """Indices outside [0, size) mirrored about the edge pixels (``F.pad(mode="reflect")``)."""
    index = index.abs()
    return torch.where(index > size - 1, 2 * (size - 1) - index, index)


class IntegerTranslate(nn.Module):
    """Each sample shifted by whole pixels, up to ``fraction`` of its size on each axis, with
    reflected borders (ADA's integer translation)."""

    def __init__(self, fraction: float) -> None:
        super().__init__()
        self.fraction = fraction

    def forward(self, x: Tensor) -> Tensor:  # [N, C, H, W]
        N, C, H, W = x.shape
        out = x
        for dim, size in ((3, W), (2, H)):
            limit = min(round(self.fraction * size), size - 1)
            shift = torch.randint(-limit, limit + 1, (N, 1), device=x.device)
            index = _reflect(torch.arange(size, device=x.device) - shift, size)  # [N, size]
            view = (N, 1, 1, size) if dim == 3 else (N, 1, size, 1)
            out = out.gather(dim, index.view(view).expand(N, C, H, W))
        return out


# ---------------------------------------------------------------------------- colour and cutout
def scale_contrast(x: Tensor, factor: Tensor) -> Tensor:
    """Each sample times its factor [N], clamped to [0, 1]: kornia's ``adjust_contrast`` without
    the non-negativity check that kornia 0.9.2 added, which reads the factors back on the host at
    every call on a CPU (factors here are 1 ± a strength in [0, 1], never negative)."""
    return (x * factor.view(-1, *([1] * (x.dim() - 1)))).clamp(0.0, 1.0)


def _uniform(x: Tensor, centre: float, half_width: float) -> Tensor:
    """One value per sample of ``x``, uniform in ``centre ± half_width``, on ``x``'s device."""
    return centre + half_width * (2.0 * torch.rand(x.shape[0], device=x.device, dtype=x.dtype) - 1)


class ColorJitter(nn.Module):
    """ADA's colour transforms in ADA's order, as kornia's ``ColorJiggle``: a brightness offset
    in ±``brightness``, contrast and saturation factors in 1 ± their strengths, a hue rotation of
    ±``hue`` turns, per sample. Images in [0, 1]; a strength of 0 skips its transform."""

    def __init__(self, brightness: float, contrast: float, saturation: float, hue: float) -> None:
        super().__init__()
        self.strengths = (brightness, contrast, saturation, hue)

    def forward(self, x: Tensor) -> Tensor:  # [N, 3, H, W]
        brightness, contrast, saturation, hue = self.strengths
        if brightness > 0:
            x = KE.adjust_brightness(x, _uniform(x, 0.0, brightness))
        if contrast > 0:
            x = scale_contrast(x, _uniform(x, 1.0, contrast))
        if hue > 0:
            x = KE.adjust_hue(x, _uniform(x, 0.0, hue) * (2 * math.pi))
        if saturation > 0:
            x = KE.adjust_saturation(x, _uniform(x, 1.0, saturation))
        return x


class Cutout(nn.Module):
    """A square of side ``fraction`` of the image size, at a uniform position inside the image,
    set to 0 (mid-grey in [-1, 1]), per sample (kornia's ``RandomErasing`` with a fixed square)."""

    def __init__(self, fraction: float) -> None:
        super().__init__()
        self.fraction = fraction

    def forward(self, x: Tensor) -> Tensor:  # [N, C, H, W]
        N, _, H, W = x.shape
        inside = []  # [N, H] rows, then [N, W] columns of each sample's square
        for size in (H, W):
            side = min(max(round(self.fraction * size), 1), size)
            start = (torch.rand(N, 1, device=x.device) * (size - side + 1)).floor()
            index = torch.arange(size, device=x.device)
            inside.append((index >= start) & (index < start + side))  # [N, size]
        erased = inside[0].view(N, 1, H, 1) & inside[1].view(N, 1, 1, W)
        return x.masked_fill(erased, 0.0)


class DiscriminatorAugment(nn.Module):
    """Augments a batch [N, C, H, W] in [-1, 1]; ``p`` is tuned (ada) or fixed (diffaugment)."""

    def __init__(
        self,
        *,
        mode: str = "ada",  # ada (p tuned by r_t) | diffaugment (p fixed)
        initial_p: float = 0.0,  # starting strength (diffaugment: the fixed strength)
        target: float = 0.6,  # ada: the r_t that p is steered towards
        interval: int = 4,  # ada: D steps between adjustments of p
        speed_kimg: float = 500.0,  # ada: thousands of images for p to go from 0 to 1
        max_p: float = 1.0,  # ada: ceiling of p
        xflip: bool = True,  # horizontal flips
        rotate90: bool = True,  # 0/90/180/270 degree rotations
        translate: float = 0.125,  # integer translation up to this fraction of the size; 0 = off
        brightness: float = 0.2,  # colour jitter strengths (ColorJitter); 0 = off
        contrast: float = 0.3,
        saturation: float = 0.5,
        hue: float = 0.05,
        cutout: float = 0.5,  # side of the erased square as a fraction of the size; 0 = off
    ) -> None:
        super().__init__()
        if mode not in MODES:
            raise ConfigError(f"augment.mode must be one of {', '.join(MODES)}, got {mode!r}")
        if not 0.0 <= initial_p <= 1.0 or not 0.0 <= max_p <= 1.0:
            raise ConfigError("augment.initial_p and augment.max_p must be in [0, 1]")
        if interval < 1 or speed_kimg <= 0:
            raise ConfigError("augment.interval must be >= 1 and augment.speed_kimg > 0")
        if min(brightness, contrast, saturation, hue) < 0 or max(contrast, saturation) > 1:
            raise ConfigError(
                "augment.brightness/contrast/saturation/hue must be >= 0, and contrast and "
                f"saturation at most 1 (factors 1 ± strength), got {brightness=}, {contrast=}, "
                f"{saturation=}, {hue=}"
            )
        self.mode = mode
        self.target = target
        self.interval = interval
        self.speed_images = speed_kimg * 1000.0
        self.max_p = max_p
        self.initial_p = float(initial_p)
        self.register_buffer("p", torch.tensor(self.initial_p))
        self.register_buffer("rt", torch.tensor(0.0))  # the latest r_t (for logging)
        self.register_buffer("sign_sum", torch.tensor(0.0))
        self.register_buffer("sign_count", torch.tensor(0.0))
        self.register_buffer("steps", torch.tensor(0, dtype=torch.long))  # checkpointed count
        self._calls = 0  # the same count on the host, so deciding to adjust never syncs
        # Each transform at p=1: the per-sample mask below decides who gets it.
        transforms: list[tuple[Callable[[Tensor], Tensor], bool]] = []  # (op, works in [0, 1])
        if xflip:
            transforms.append((K.RandomHorizontalFlip(p=1.0), False))
        if rotate90:
            transforms.append((Rotate90(), False))
        if translate > 0:
            transforms.append((IntegerTranslate(translate), False))
        if max(brightness, contrast, saturation, hue) > 0:
            transforms.append((ColorJitter(brightness, contrast, saturation, hue), True))
        if cutout > 0:
            transforms.append((Cutout(cutout), False))
        self.transforms = nn.ModuleList([op for op, _ in transforms])
        self.in_unit_range = [unit for _, unit in transforms]

    def forward(self, images: Tensor) -> Tensor:
        """Each transform applied to each sample with probability ``p``; differentiable."""
        x = images
        n = x.shape[0]
        for op, unit in zip(self.transforms, self.in_unit_range, strict=True):
            apply = (torch.rand(n, device=x.device) < self.p).view(n, 1, 1, 1)
            augmented = op(x * 0.5 + 0.5) * 2.0 - 1.0 if unit else op(x)
            x = torch.where(apply, augmented.to(x.dtype), x)
        return x

    @torch.no_grad()
    def accumulate(self, real_logits: Tensor, batch_size: int) -> None:
        """Add D(real)'s signs to r_t; every ``interval`` calls, move ``p`` (ada only)."""
        if self.mode != "ada":
            return
        self.sign_sum += torch.sign(real_logits.detach().float()).sum()
        self.sign_count += real_logits.numel()
        self.steps += 1
        self._calls += 1
        if self._calls % self.interval:
            return
        sums = torch.stack([self.sign_sum, self.sign_count])
        world = 1
        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(sums)
            world = dist.get_world_size()
        self.rt.copy_(sums[0] / sums[1].clamp(min=1.0))
        step = batch_size * world * self.interval / self.speed_images
        self.p.copy_((self.p + torch.sign(self.rt - self.target) * step).clamp(0.0, self.max_p))
        self.sign_sum.zero_()
        self.sign_count.zero_()

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs) -> None:
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        self._calls = int(self.steps)  # resume adjusts p at the same steps as before
        if self.mode == "diffaugment":  # p is the config's, also after an ada checkpoint
            self.p.fill_(self.initial_p)


def adapt_resumed_state(
    augment: DiscriminatorAugment | None, state: dict[str, Tensor], prefix: str = "augment."
) -> None:
    """Make a checkpoint's ``state`` fit a run that turned augmentation on or off (in place).

    Adding ADA or DiffAugment to a run that has trained without it is a use the ADA paper names
    (augmentation when D begins to overfit); the fresh pipeline's buffers fill the missing keys.
    """
    saved = [key for key in state if key.startswith(prefix)]
    if augment is not None and not saved:
        state.update({prefix + key: value.clone() for key, value in augment.state_dict().items()})
        log.info("the checkpoint trained without augmentation: %s starts here at p=%g",
                 augment.mode, augment.initial_p)  # fmt: skip
    elif augment is None and saved:
        for key in saved:
            del state[key]
        log.info("the checkpoint trained with augmentation: it is off from here on")


def build_augment(mode: str | None, **options: object) -> DiscriminatorAugment | None:
    """The pipeline for ``conf/augment`` (``mode: none`` or null = no augmentation)."""
    if mode in (None, "none"):
        return None
    return DiscriminatorAugment(mode=mode, **options)
