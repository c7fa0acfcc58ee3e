"""Figures from a trained generator: faces, truncation sweep, style mixing, noise, interpolation.

One concern per module, each depending only on the ones above it:

- ``layers``: layer-range specs (``coarse``, ``"0-3"``, ...), the noise figure's coarse/fine
  split and per-layer ψ.
- ``seeds``: seeds -> latents and per-seed noise (the reproducibility contract).
- ``render``: ws or seeds -> images in batches of a fixed shape; noise modes.
- ``sources``: a figure's faces: seeds or fixed latents (projected real faces) -> ws and noise.
- ``figures``: the figures as tensors (truncation sweep, mixing grid, noise, interpolation).
- ``files``: file names and PNG / GIF / MP4 writing; never runs a generator.

``sample.py`` validates its options with the ``check_*`` functions (and the generator's
:func:`~stylegan.networks.generator.check_psi`), computes each figure here and hands the tensors
to a ``write_*`` function. Seed ``s`` gives the same bytes in every run for a given
``batch_size`` and device.
"""

from stylegan.sampling.figures import (
    FIGURES,
    check_figures,
    check_noise_draws,
    check_space,
    check_space_sources,
    check_steps,
    interpolation_frames,
    interpolation_steps,
    mix_layers,
    noise_figures,
    slerp,
    std_image,
    style_mixing_grid,
    style_mixing_ws,
    truncation_sweep,
)
from stylegan.sampling.files import (
    check_faces_output,
    check_fps,
    faces_name,
    mp4_available,
    psi_label,
    save_gif,
    save_mp4,
    seeds_label,
    write_faces,
    write_interpolation,
    write_mixing,
    write_noise,
    write_truncation,
)
from stylegan.sampling.layers import (
    LAYER_RANGES,
    layer_label,
    layer_psi,
    layer_range,
    layer_resolution,
    mixing_specs,
    noise_layer_split,
    parse_layer_spec,
)
from stylegan.sampling.render import (
    check_batch_size,
    check_noise_mode,
    generate_images,
    iter_images,
    map_latents,
    render_ws,
    synthesize,
)
from stylegan.sampling.seeds import (
    check_seed,
    check_seeds,
    latents_for_seeds,
    noise_for_seeds,
    noise_modules,
)
from stylegan.sampling.sources import (
    FixedLatent,
    Source,
    check_sources,
    noise_args,
    source_label,
    source_ws,
)

__all__ = [
    "FIGURES",
    "LAYER_RANGES",
    "FixedLatent",
    "Source",
    "check_batch_size",
    "check_faces_output",
    "check_figures",
    "check_fps",
    "check_noise_draws",
    "check_noise_mode",
    "check_seed",
    "check_seeds",
    "check_sources",
    "check_space",
    "check_space_sources",
    "check_steps",
    "faces_name",
    "generate_images",
    "interpolation_frames",
    "interpolation_steps",
    "iter_images",
    "latents_for_seeds",
    "layer_label",
    "layer_psi",
    "layer_range",
    "layer_resolution",
    "map_latents",
    "mix_layers",
    "mixing_specs",
    "mp4_available",
    "noise_args",
    "noise_figures",
    "noise_for_seeds",
    "noise_layer_split",
    "noise_modules",
    "parse_layer_spec",
    "psi_label",
    "render_ws",
    "save_gif",
    "save_mp4",
    "seeds_label",
    "slerp",
    "source_label",
    "source_ws",
    "std_image",
    "style_mixing_grid",
    "style_mixing_ws",
    "synthesize",
    "truncation_sweep",
    "write_faces",
    "write_interpolation",
    "write_mixing",
    "write_noise",
    "write_truncation",
]
