"""Feature-map widths and resolution checks shared by the generator and the discriminator.

Owns :func:`channels_at`, the ONE width function both networks use (so G and D never drift),
and the validation of resolutions (powers of two) with one-line error messages.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from stylegan.errors import ConfigError

MIN_RESOLUTION = 4  # the 4×4 block (learned constant in G, minibatch-stddev block in D)
MAX_RESOLUTION = 1024  # the largest resolution of the paper


def _is_power_of_two(value: object) -> bool:
    return (
        isinstance(value, int)
        and not isinstance(value, bool)
        and value > 0
        and not (value & (value - 1))
    )


def check_resolution(resolution: int, *, minimum: int = 8, maximum: int = MAX_RESOLUTION) -> int:
    """Return ``resolution`` if it is a power of two in [minimum, maximum].

    Otherwise raise a one-line :class:`ConfigError` (a ValueError).
    """
    if not _is_power_of_two(resolution) or not minimum <= resolution <= maximum:
        raise ConfigError(
            f"resolution must be a power of two between {minimum} and {maximum}, got {resolution!r}"
        )
    return resolution


def resolutions_up_to(resolution: int) -> list[int]:
    """The resolution ladder ``[4, 8, ..., resolution]`` of a network built for ``resolution``."""
    check_resolution(resolution, minimum=MIN_RESOLUTION)
    return [2**k for k in range(2, resolution.bit_length())]


def check_active_resolution(resolution: int | None, resolutions: Sequence[int]) -> int:
    """The resolution a network runs at: ``resolution``, or the final one of ``resolutions`` for
    ``None``; a one-line ConfigError unless it is one of the built ``resolutions``."""
    if resolution is None:
        return int(resolutions[-1])
    if resolution not in resolutions:
        raise ConfigError(f"resolution must be one of {list(resolutions)}, got {resolution!r}")
    return int(resolution)


def normalize_channels(channels: Mapping[int, int] | None) -> dict[int, int] | None:
    """An explicit width table as a plain ``{int: int}`` dict (accepts str keys from JSON/YAML)."""
    if channels is None:
        return None
    return {int(res): int(width) for res, width in channels.items()}


def channels_at(
    resolution: int,
    *,
    channel_base: int = 16384,  # width = channel_base // resolution before clamping
    channel_max: int = 512,  # upper bound on the width
    channels: Mapping[int, int] | None = None,  # explicit {resolution: width}; overrides the rest
) -> int:
    """Number of feature maps of the block working at ``resolution`` (4..1024).

    Explicit ``channels[resolution]`` if a table is given, else
    ``min(channel_base // resolution, channel_max)`` clamped to at least 1. The defaults give the
    paper's widths: 512 up to 32×32, then 256, 128, 64, 32 and 16 at 1024×1024.
    """
    check_resolution(resolution, minimum=MIN_RESOLUTION)
    if channels is not None:
        table = normalize_channels(channels)
        if resolution not in table:
            raise ConfigError(
                f"channels table has no width for resolution {resolution} (has {sorted(table)})"
            )
        width = table[resolution]
    else:
        width = max(1, min(channel_base // resolution, channel_max))
    if width < 1:
        raise ConfigError(f"channel width must be >= 1, got {width} at resolution {resolution}")
    return width


def channel_table(
    resolution: int,
    *,
    channel_base: int = 16384,
    channel_max: int = 512,
    channels: Mapping[int, int] | None = None,
) -> dict[int, int]:
    """Widths of every resolution 4..``resolution``: the one table G and D are built from."""
    table = normalize_channels(channels)
    return {
        r: channels_at(r, channel_base=channel_base, channel_max=channel_max, channels=table)
        for r in resolutions_up_to(resolution)
    }
