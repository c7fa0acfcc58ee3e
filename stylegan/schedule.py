"""The progressive-growing schedule as a pure function of images seen.

Timeline (ProGAN/StyleGAN, counted in images): the start resolution trains ``stable_kimg``;
every later resolution first fades in over ``fade_kimg`` (alpha rising linearly 0 -> 1), then
trains ``stable_kimg``. The final resolution, once faded in, trains until ``total_kimg``.
A start resolution equal to the final one is a non-progressive run (alpha is always 1).

With ``time_fraction`` set, the phases are budgeted in wall-clock time instead: each resolution
gets its share of the run's time budget (``trainer.max_time``), the first ``fade_share`` of a grown
resolution's share is its fade-in, and the final resolution trains until the budget is spent. A
slower machine then still reaches the final resolution, with fewer images at each; the state is a
pure function of (images seen, fraction of the budget used), and the budget used is checkpointed
by Lightning's timer, so a resumed run continues in the same phase.
"""

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from stylegan.errors import ConfigError

FADE = "fade"
STABLE = "stable"


@dataclass(frozen=True)
class ProgressState:
    """Where training is: what the networks run at and which phase it is in."""

    images_seen: int
    resolution: int
    alpha: float  # 1.0 = the current resolution's block is fully faded in
    phase: str  # FADE or STABLE
    phase_index: int  # 0 = start resolution stable, then fade/stable pairs per resolution
    batch_size: int
    lr: float

    @property
    def kimg(self) -> float:
        return self.images_seen / 1000.0


def _is_power_of_two(n: int) -> bool:
    return n >= 1 and (n & (n - 1)) == 0


def _lookup(table: Mapping[int, float], resolution: int, what: str) -> float:
    """Per-resolution value; resolutions missing from the table take the nearest lower entry."""
    keys = sorted(int(k) for k in table)
    below = [k for k in keys if k <= resolution]
    if not below:
        raise ConfigError(
            f"stage.{what} has no entry for {resolution}px or below (has {keys}); "
            f"add one, e.g. stage.{what}.{resolution}=..."
        )
    return {int(k): v for k, v in table.items()}[below[-1]]


@dataclass(frozen=True)
class ProgressiveSchedule:
    """Resolution, fade-in alpha, batch size and learning rate as a function of images seen."""

    final_resolution: int  # the resolution training grows to
    start_resolution: int = 8  # == final_resolution: no growing
    fade_kimg: float = 600.0  # thousands of images per fade-in phase
    stable_kimg: float = 600.0  # thousands of images per stable phase
    total_kimg: float = 6000.0  # length of the whole run
    batch_size: Mapping[int, int] = field(default_factory=lambda: {8: 32})  # per resolution
    lr: Mapping[int, float] = field(default_factory=lambda: {8: 0.001})  # per resolution
    # {resolution: share of the time budget}; None = phases counted in kimg (above)
    time_fraction: Mapping[int, float] | None = None
    # time mode: share of a grown resolution's time spent fading in; a number, or a table
    # {resolution: share} whose missing resolutions take the nearest lower entry
    fade_share: float | Mapping[int, float] = 0.5

    def __post_init__(self) -> None:
        for name in ("start_resolution", "final_resolution"):
            value = getattr(self, name)
            if not _is_power_of_two(value) or not 4 <= value <= 1024:
                raise ConfigError(f"stage.{name} must be a power of two in 4..1024, got {value}")
        if self.start_resolution > self.final_resolution:
            raise ConfigError(
                f"stage.start_resolution ({self.start_resolution}) is above the final "
                f"resolution ({self.final_resolution}); lower it or pick a larger stage"
            )
        if self.fade_kimg < 0 or self.stable_kimg <= 0 or self.total_kimg <= 0:
            raise ConfigError(
                "stage.fade_kimg must be >= 0 and stage.stable_kimg, stage.total_kimg > 0, got "
                f"{self.fade_kimg}, {self.stable_kimg}, {self.total_kimg}"
            )
        for res in self.resolutions:
            if _lookup(self.batch_size, res, "batch_size") < 1:
                raise ConfigError(f"stage.batch_size at {res}px must be >= 1")
            _lookup(self.lr, res, "lr")
        if self.time_fraction is not None:
            shares = {int(k): float(v) for k, v in self.time_fraction.items()}
            missing = [r for r in self.resolutions if r not in shares]
            if missing:
                raise ConfigError(
                    f"stage.time_fraction has no share for {missing} px (has "
                    f"{sorted(shares)}); give every resolution from {self.start_resolution} to "
                    f"{self.final_resolution}px one, e.g. +stage.time_fraction.{missing[0]}=0.1"
                )
            if any(shares[r] <= 0 for r in self.resolutions):
                raise ConfigError(f"stage.time_fraction shares must be > 0, got {shares}")
            for res in self.resolutions[1:]:
                if not 0.0 <= self.fade_share_at(res) < 1.0:
                    raise ConfigError(
                        f"stage.fade_share must be in [0, 1), got {self.fade_share_at(res)} "
                        f"at {res}px"
                    )

    def fade_share_at(self, resolution: int) -> float:
        """Time mode: the share of ``resolution``'s time spent fading it in."""
        if isinstance(self.fade_share, Mapping):
            return float(_lookup(self.fade_share, resolution, "fade_share"))
        return float(self.fade_share)

    @property
    def time_budgeted(self) -> bool:
        """Phases last fractions of the time budget (trainer.max_time), not kimg."""
        return self.time_fraction is not None

    def time_phases(self) -> list[tuple[int, str, float, float]]:
        """Time mode: (resolution, phase, start, end) as fractions of the budget, in order; the
        shares are normalized to sum to 1 and the final stable phase runs to the end."""
        assert self.time_fraction is not None
        shares = {int(k): float(v) for k, v in self.time_fraction.items()}
        total = sum(shares[r] for r in self.resolutions)
        phases, start = [], 0.0
        for i, res in enumerate(self.resolutions):
            share = shares[res] / total
            fade = 0.0 if i == 0 else share * self.fade_share_at(res)
            if fade > 0:
                phases.append((res, FADE, start, start + fade))
            phases.append((res, STABLE, start + fade, start + share))
            start += share
        res, phase, begin, _ = phases[-1]
        phases[-1] = (res, phase, begin, float("inf"))
        return phases

    @property
    def resolutions(self) -> list[int]:
        """Every resolution the run trains at, in order."""
        steps = int(math.log2(self.final_resolution // self.start_resolution))
        return [self.start_resolution * 2**i for i in range(steps + 1)]

    @property
    def total_images(self) -> int:
        return round(self.total_kimg * 1000)

    def images_to_reach_final(self) -> int:
        """Images until the final resolution is fully faded in."""
        grows = len(self.resolutions) - 1
        if grows == 0:
            return 0
        pairs = (grows - 1) * (self.fade_kimg + self.stable_kimg)
        return round((self.stable_kimg + pairs + self.fade_kimg) * 1000)

    def state_at(self, images_seen: int, budget_used: float | None = None) -> ProgressState:
        """The progressive state after ``images_seen`` training images (and, in time mode, with
        ``budget_used`` of the time budget spent: 0 at the start, 1 at the end)."""
        if self.time_budgeted:
            if budget_used is None:
                raise ValueError("a time-budgeted schedule needs budget_used")
            return self._state_at_time(images_seen, budget_used)
        fade = self.fade_kimg * 1000
        stable = self.stable_kimg * 1000
        resolutions = self.resolutions
        index, phase, alpha, position = 0, STABLE, 1.0, float(images_seen) - stable
        if position >= 0 and len(resolutions) > 1:
            # Past the start resolution: one (fade, stable) pair per later resolution.
            pair = fade + stable
            grow = min(int(position // pair), len(resolutions) - 2)
            within = position - grow * pair
            index = grow + 1
            if within < fade:
                phase, alpha = FADE, within / fade
        return self._state(images_seen, index, phase, alpha)

    def _state(self, images_seen: int, index: int, phase: str, alpha: float) -> ProgressState:
        """The state at the ``index``-th resolution, in ``phase`` with ``alpha``: its phase
        index, batch size and lr, the same whether phases are counted in kimg or time."""
        resolution = self.resolutions[index]
        return ProgressState(
            images_seen=int(images_seen),
            resolution=resolution,
            alpha=float(alpha),
            phase=phase,
            phase_index=0 if index == 0 else 2 * index - (1 if phase == FADE else 0),
            batch_size=int(_lookup(self.batch_size, resolution, "batch_size")),
            lr=float(_lookup(self.lr, resolution, "lr")),
        )

    def _state_at_time(self, images_seen: int, budget_used: float) -> ProgressState:
        phases = self.time_phases()
        index = next(i for i, (*_, end) in enumerate(phases) if budget_used < end)
        resolution, phase, start, end = phases[index]
        alpha = min(max((budget_used - start) / (end - start), 0.0), 1.0) if phase == FADE else 1.0
        return self._state(images_seen, self.resolutions.index(resolution), phase, alpha)
