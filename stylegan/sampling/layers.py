"""Which synthesis layers a figure touches: layer-range specs and per-layer ψ.

Owns the user-facing layer specs of the mixing figure (``coarse`` | ``middle`` | ``fine`` |
``all``, ``"a-b"``, ``"a,b,c"`` or a list of indices) with their one-line
:class:`~stylegan.errors.ConfigError` messages and file-name labels, the coarse/fine split of the
noise figure, and how a per-layer ψ list maps onto a generator's layers. Layer ``i`` is fed by
``ws[:, i]`` and sits at resolution ``4 * 2 ** (i // 2)``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from stylegan.errors import ConfigError
from stylegan.networks import Generator

# Named layer ranges by the resolution of the layers (inclusive bounds; None = no upper bound),
# as in the paper's style-mixing figure (Fig. 3).
LAYER_RANGES: dict[str, tuple[int, int | None]] = {
    "coarse": (4, 8),
    "middle": (16, 32),
    "fine": (64, None),
    "all": (4, None),
}
FINE_NOISE_FROM = 64  # Fig. 5: "fine" noise = layers at 64px and up, "coarse" = 4-32px


def _is_index(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def layer_resolution(index: int) -> int:
    """Resolution of the synthesis layer fed by ``ws[:, index]``: ``4 * 2 ** (index // 2)``."""
    return 4 * 2 ** (index // 2)


def parse_layer_spec(spec: object) -> str | tuple[int, ...]:
    """Validate a layer-range spec without a generator: a name of :data:`LAYER_RANGES`, a string
    ``"a-b"`` (inclusive) or ``"a,b,c"``, or a list of layer indices. Returns the name or indices.
    """
    if isinstance(spec, str):
        text = spec.strip().lower()
        if text in LAYER_RANGES:
            return text
        if m := re.fullmatch(r"(\d+)\s*-\s*(\d+)", text):
            lo, hi = int(m[1]), int(m[2])
            if lo > hi:
                raise ConfigError(f"layer range {spec!r} is empty (start > end)")
            return tuple(range(lo, hi + 1))
        if re.fullmatch(r"\d+(\s*,\s*\d+)*", text):
            return tuple(sorted({int(t) for t in text.split(",")}))
        raise ConfigError(
            f"unknown layer range {spec!r}; use {', '.join(LAYER_RANGES)}, 'a-b', 'a,b,c' "
            "or a list of layer indices"
        )
    if _is_index(spec):
        spec = [spec]
    if isinstance(spec, Sequence) and spec and all(_is_index(i) for i in spec):
        return tuple(sorted({int(i) for i in spec}))
    raise ConfigError(
        f"layer range must be a name ({', '.join(LAYER_RANGES)}) or non-negative layer indices, "
        f"got {spec!r}"
    )


def mixing_specs(layers: object) -> list[object]:
    """One spec per mixing figure: a list of names draws one figure each; each is validated."""
    is_names = isinstance(layers, list) and layers and all(isinstance(x, str) for x in layers)
    specs = list(layers) if is_names else [layers]
    for spec in specs:
        parse_layer_spec(spec)
    return specs


def layer_range(spec: object, num_ws: int) -> list[int]:
    """Layer indices of ``spec`` (see :func:`parse_layer_spec`) among ``num_ws`` layers.

    Layer i belongs to resolution ``4 * 2 ** (i // 2)``: ``coarse`` = 4-8px, ``middle`` =
    16-32px, ``fine`` = 64px and up, ``all``. Indices past ``num_ws`` (resolutions the generator
    was not trained to) are clipped; a range left empty is a ConfigError.
    """
    parsed = parse_layer_spec(spec)
    if isinstance(parsed, str):
        lo, hi = LAYER_RANGES[parsed]
        layers = [
            i
            for i in range(num_ws)
            if lo <= layer_resolution(i) and (hi is None or layer_resolution(i) <= hi)
        ]
        what = f"{parsed!r} ({lo}-{hi}px)" if hi else f"{parsed!r} ({lo}px and up)"
    else:
        layers = [i for i in parsed if i < num_ws]
        what = f"{list(parsed)}"
    if not layers:
        top = layer_resolution(num_ws - 1)
        raise ConfigError(
            f"layer range {what} is empty for a generator rendering at {top}px "
            f"(layers 0-{num_ws - 1}); pick a range at or below {top}px"
        )
    return layers


def layer_label(spec: object) -> str:
    """File-name label of a layer spec: ``coarse``, ``layers0-3``, ``layers0_2_5``."""
    parsed = parse_layer_spec(spec)
    if isinstance(parsed, str):
        return parsed
    if len(parsed) > 1 and list(parsed) == list(range(parsed[0], parsed[-1] + 1)):
        return f"layers{parsed[0]}-{parsed[-1]}"
    return "layers" + "_".join(map(str, parsed))


def noise_layer_split(num_ws: int) -> tuple[list[int], list[int]]:
    """(coarse, fine) layers for the noise figure: fine = 64px and up (paper's Fig. 5); a
    generator rendering below 64px has no such layers, so its upper half counts as fine."""
    fine = [i for i in range(num_ws) if layer_resolution(i) >= FINE_NOISE_FROM]
    if not fine:
        fine = list(range(num_ws // 2, num_ws))
    coarse = [i for i in range(num_ws) if i not in fine]
    return coarse, fine


def layer_psi(
    generator: Generator, psi: float | Sequence[float], resolution: int
) -> float | list[float]:
    """ψ for ``generator.truncate``: a float, or a per-layer list of ``generator.num_ws`` values.

    A list may also have ``num_ws_at(resolution)`` values (the layers the trained resolution
    uses); the unused layers above it are padded with 1.
    """
    if not isinstance(psi, Sequence):
        return float(psi)
    used = generator.num_ws_at(resolution)
    if len(psi) == generator.num_ws:
        return [float(p) for p in psi]
    if len(psi) == used:
        return [float(p) for p in psi] + [1.0] * (generator.num_ws - used)
    lengths = str(used) if used == generator.num_ws else f"{used} (or {generator.num_ws})"
    raise ConfigError(f"a per-layer psi needs {lengths} values for this generator, got {len(psi)}")
