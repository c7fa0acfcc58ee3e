"""sample.py and stylegan.sampling: reproducible per-seed images, the figures' layout and content,
the writers, the CLI end to end and its one-line errors.

A tiny 16px generator with non-zero noise strengths and a non-zero ``w_avg`` (so noise and ψ
visibly matter) is saved as a ``generator.pt`` and as a fake training ``last.ckpt``; the CLI runs
as subprocesses, started together once per module to keep the file fast.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig
from PIL import Image

from sample import sample
from stylegan import sampling as S
from stylegan.checkpoints import atomic_torch_save, generator_export, load_generator
from stylegan.errors import ConfigError, UserError
from stylegan.imaging import to_uint8
from stylegan.networks import Generator

ROOT = Path(__file__).resolve().parents[1]
TINY_G = {
    "resolution": 16,
    "z_dim": 16,
    "w_dim": 16,
    "mapping_layers": 2,
    "channel_base": 256,
    "channel_max": 16,
}
RES = 16
PAD = 2  # grid padding of stylegan.imaging.grid_image
BS = 8  # batch size used throughout (a seed's bytes are fixed for a given batch size)


def tiny_generator() -> Generator:
    torch.manual_seed(0)
    G = Generator(**TINY_G)
    with torch.no_grad():
        for name, param in G.named_parameters():
            if name.endswith("noise.weight"):
                param.normal_(0.0, 0.5)  # trained-like noise strengths (0 at init)
        G.w_avg.normal_()
    return G.eval().requires_grad_(False)


def fake_training_checkpoint(generator: Generator, resolution: int) -> dict:
    return {
        "state_dict": {"generator_ema." + k: v for k, v in generator.state_dict().items()},
        "stylegan": {
            "format": 1,
            "generator_config": generator.config,
            "progress": {
                "images_seen": 0,
                "resolution": resolution,
                "alpha": 1.0,
                "phase_index": 0,
            },
        },
    }


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    """generator.pt (16px), last.ckpt (16px) and last8.ckpt (same weights, trained to 8px)."""
    root = tmp_path_factory.mktemp("ckpts")
    G = tiny_generator()
    paths = {
        "export": root / "generator.pt",
        "ckpt": root / "last.ckpt",
        "ckpt8": root / "last8.ckpt",
        "random": root / "random.pt",
    }
    atomic_torch_save(generator_export(G, resolution=16, images_seen=0), paths["export"])
    atomic_torch_save(fake_training_checkpoint(G, 16), paths["ckpt"])
    atomic_torch_save(fake_training_checkpoint(G, 8), paths["ckpt8"])
    torch.save({"weights": torch.zeros(3), "epoch": 1}, paths["random"])
    return paths


@pytest.fixture(scope="module")
def gen(files) -> Generator:
    return load_generator(files["export"])[0]


def config(*overrides: str) -> DictConfig:
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return compose(config_name="sample", overrides=list(overrides))


def run_sample(ckpt: Path, out_dir: Path, *overrides: str) -> list[Path]:
    return sample(config(f"ckpt={ckpt}", f"out_dir={out_dir}", f"batch_size={BS}", *overrides))


def png(path: Path) -> torch.Tensor:
    """uint8 [H, W, C] of a PNG."""
    with Image.open(path) as im:
        return torch.from_numpy(np.asarray(im.convert("RGB")).copy())


def cell(grid: torch.Tensor, row: int, col: int, size: int = RES) -> torch.Tensor:
    """uint8 [size, size, C] of cell (row, col) of a grid PNG made by grid_image."""
    top, left = PAD + row * (size + PAD), PAD + col * (size + PAD)
    return grid[top : top + size, left : left + size]


def hwc(images: torch.Tensor) -> torch.Tensor:
    """float [N, C, H, W] in [-1, 1] -> uint8 [N, H, W, C], as the PNGs store them."""
    return to_uint8(images).permute(0, 2, 3, 1)


# ---------------------------------------------------------------------------------------------
# Determinism
# ---------------------------------------------------------------------------------------------


def test_latents_are_per_seed():
    z = S.latents_for_seeds([5, 6, 7], 16)
    assert torch.equal(z[2:], S.latents_for_seeds([7], 16))
    assert torch.equal(z[0], S.latents_for_seeds([9, 5], 16)[1])
    assert not torch.equal(z[0], z[1])


@pytest.mark.parametrize("noise", ["random", "const", "none"])
def test_image_of_a_seed_does_not_depend_on_n_or_neighbours(gen, noise):
    many = S.generate_images(gen, list(range(10)), psi=0.7, noise_mode=noise, batch_size=BS)
    assert torch.equal(
        many[:1], S.generate_images(gen, [0], psi=0.7, noise_mode=noise, batch_size=BS)
    )
    assert torch.equal(
        many[9:], S.generate_images(gen, [9], psi=0.7, noise_mode=noise, batch_size=BS)
    )
    others = S.generate_images(gen, [42, 3, 17], psi=0.7, noise_mode=noise, batch_size=BS)
    assert torch.equal(many[3], others[1])
    assert not torch.equal(many[0], many[1])


def test_random_noise_is_per_seed_not_global_rng(gen):
    torch.manual_seed(1)
    a = S.generate_images(gen, [0, 1], noise_mode="random", batch_size=BS)
    torch.manual_seed(2)
    b = S.generate_images(gen, [0, 1], noise_mode="random", batch_size=BS)
    assert torch.equal(a, b)
    # ... and it is real noise: it changes the image, differently from const noise.
    none = S.generate_images(gen, [0, 1], noise_mode="none", batch_size=BS)
    const = S.generate_images(gen, [0, 1], noise_mode="const", batch_size=BS)
    assert (a - none).abs().max() > 0.05 and (a - const).abs().max() > 0.05


def test_other_batch_size_moves_pixels_by_at_most_one_level(gen):
    seeds = list(range(20))
    a = to_uint8(S.generate_images(gen, seeds, batch_size=BS))
    b = to_uint8(S.generate_images(gen, seeds, batch_size=3))
    assert (a.int() - b.int()).abs().max() <= 1


def test_same_seed_same_png_bytes_and_n1_equals_first_of_n4(files, tmp_path):
    first = run_sample(files["export"], tmp_path / "a", "n=4", "seed=0", "save_individual=true")
    again = run_sample(files["export"], tmp_path / "b", "n=4", "seed=0", "save_individual=true")
    other = run_sample(files["export"], tmp_path / "c", "n=4", "seed=1")
    single = run_sample(files["export"], tmp_path / "d", "n=1", "seed=0", "save_individual=true")
    assert [p.name for p in first] == ["faces_seed0_n4_psi1.png", "faces_seed0_n4_psi1"]
    assert first[0].read_bytes() == again[0].read_bytes()
    assert first[0].read_bytes() != other[0].read_bytes()
    singles = sorted(first[1].iterdir())
    assert [p.name for p in singles] == [f"seed{s:06d}.png" for s in range(4)]
    assert singles[0].read_bytes() == (single[1] / "seed000000.png").read_bytes()
    assert singles[0].read_bytes() != singles[1].read_bytes()
    # Seed 1 of the n=4 run is the first image of the seed=1 run, in the grids too.
    assert torch.equal(cell(png(first[0]), 0, 1), cell(png(other[0]), 0, 0))
    assert torch.equal(png(single[0]), png(singles[0]))  # a grid of one image is the image


def test_faces_grid_keeps_only_grid_max_images(files, tmp_path):
    paths = run_sample(files["export"], tmp_path, "n=20", "grid_max=4", "psi=0.5", "noise=fixed")
    assert [p.name for p in paths] == ["faces_seed0_n20_psi0.5_cutoff8_noise-const.png"]
    assert png(paths[0]).shape[:2] == (2 * (RES + PAD) + PAD, 2 * (RES + PAD) + PAD)


# ---------------------------------------------------------------------------------------------
# Truncation
# ---------------------------------------------------------------------------------------------


def test_psi_zero_gives_identical_faces_under_fixed_noise(gen):
    sweep = S.truncation_sweep(gen, [0, 1, 2], [0.0, 1.0], noise_mode="const", batch_size=BS)
    mean_faces, faces = sweep[0::2], sweep[1::2]
    assert torch.equal(mean_faces[0], mean_faces[1]) and torch.equal(mean_faces[0], mean_faces[2])
    assert not torch.equal(faces[0], faces[1])
    # Random noise is the seed's: at ψ=0 faces then differ only by their noise.
    noisy = S.truncation_sweep(gen, [0, 1], [0.0], noise_mode="random", batch_size=BS)
    assert not torch.equal(noisy[0], noisy[1])


def test_sweep_cells_equal_generated_images(gen):
    sweep = S.truncation_sweep(gen, [3, 4], [-1.0, 0.7, 1.0], batch_size=BS)
    for k, psi in enumerate([-1.0, 0.7, 1.0]):
        assert torch.equal(sweep[k::3], S.generate_images(gen, [3, 4], psi=psi, batch_size=BS))


def test_per_layer_psi_and_cutoff(gen):
    a = S.generate_images(gen, [0, 1], psi=0.0, cutoff=2, noise_mode="none", batch_size=BS)
    b = S.generate_images(gen, [0, 1], psi=[0, 0, 1, 1, 1, 1], noise_mode="none", batch_size=BS)
    c = S.generate_images(gen, [0, 1], psi=0.0, noise_mode="none", batch_size=BS)
    assert torch.equal(a, b)
    assert not torch.equal(a, c) and not torch.equal(a[0], a[1])
    assert S.layer_psi(gen, [0.5] * 4, 8) == [0.5] * 4 + [1.0] * 2  # a list for the trained layers
    with pytest.raises(ConfigError, match="6 values"):
        S.layer_psi(gen, [0.5] * 3, 16)


def test_truncation_figure_file(files, gen, tmp_path):
    (path,) = run_sample(files["export"], tmp_path, "figure=truncation", "truncation.seeds=[0,1]")
    assert path.name == "truncation_seeds0-1_psi-1..1_cutoff8.png"
    assert png(path).shape[:2] == (2 * (RES + PAD) + PAD, 9 * (RES + PAD) + PAD)
    # A cutoff inside this generator's 6 layers: ψ on layers 0-1 only, layers 2-5 untruncated.
    # Each cell is the seed rendered with that per-layer ψ; cutoff=null truncates every layer.
    (cut,) = run_sample(
        files["export"], tmp_path / "c2", "figure=truncation", "truncation.seeds=[0,1]", "cutoff=2"
    )
    (every,) = run_sample(
        files["export"],
        tmp_path / "all",
        "figure=truncation",
        "truncation.seeds=[0,1]",
        "cutoff=null",
    )
    assert cut.name == "truncation_seeds0-1_psi-1..1_cutoff2.png"
    assert every.name == "truncation_seeds0-1_psi-1..1.png"
    assert gen.num_ws == 6
    psis = [-1, -0.75, -0.5, -0.25, 0, 0.25, 0.5, 0.75, 1]  # conf/sample.yaml's columns
    grids = {"cut": png(cut), "every": png(every)}
    for row, seed in enumerate([0, 1]):
        for col, psi in enumerate(psis):
            coarse = S.generate_images(gen, [seed], psi=[psi] * 2 + [1] * 4, batch_size=BS)
            full = S.generate_images(gen, [seed], psi=[psi] * 6, batch_size=BS)
            assert torch.equal(cell(grids["cut"], row, col), hwc(coarse)[0]), (seed, psi)
            assert torch.equal(cell(grids["every"], row, col), hwc(full)[0]), (seed, psi)
            if psi != 1:  # the fine layers' ψ shows in the pixels
                assert not torch.equal(hwc(coarse)[0], hwc(full)[0]), (seed, psi)


# ---------------------------------------------------------------------------------------------
# Style mixing
# ---------------------------------------------------------------------------------------------


def test_layer_ranges():
    assert S.layer_range("coarse", 18) == [0, 1, 2, 3]
    assert S.layer_range("middle", 18) == [4, 5, 6, 7]
    assert S.layer_range("fine", 18) == list(range(8, 18))
    assert S.layer_range("fine", 10) == [8, 9]
    assert S.layer_range("middle", 6) == [4, 5]  # clipped to a 16px generator
    assert S.layer_range("0-2", 6) == [0, 1, 2]
    assert S.layer_range("5,1", 6) == [1, 5]
    assert S.layer_range([3, 9], 6) == [3]  # indices past the trained layers are clipped
    assert S.layer_range("all", 6) == list(range(6))
    assert S.layer_label("coarse") == "coarse"
    assert S.layer_label([0, 1, 2, 3]) == "layers0-3"
    assert S.layer_label("0,2,5") == "layers0_2_5"
    with pytest.raises(ConfigError, match="empty") as err:
        S.layer_range("fine", 8)
    assert "\n" not in str(err.value)
    with pytest.raises(ConfigError, match="unknown layer range"):
        S.layer_range("hair", 8)
    with pytest.raises(ConfigError):
        S.layer_range([-1], 8)
    with pytest.raises(ConfigError, match="empty"):
        S.layer_range([7], 6)


def test_mixing_grid_layout(files, tmp_path):
    sources, destinations = [0, 1, 2], [3, 4]
    (path,) = run_sample(
        files["export"],
        tmp_path,
        "figure=mixing",
        "mixing.sources=[0,1,2]",
        "mixing.destinations=[3,4]",
        "mixing.layers=coarse",
    )
    assert path.name == "mixing_coarse.png"
    grid = png(path)
    rows, cols = len(destinations) + 1, len(sources) + 1
    assert grid.shape[:2] == (rows * (RES + PAD) + PAD, cols * (RES + PAD) + PAD)
    assert (cell(grid, 0, 0) == 255).all()  # top-left empty (white)
    G = load_generator(files["export"])[0]
    src = hwc(S.generate_images(G, sources, batch_size=BS))
    dst = hwc(S.generate_images(G, destinations, batch_size=BS))
    for j in range(len(sources)):
        assert torch.equal(cell(grid, 0, j + 1), src[j])
    for i in range(len(destinations)):
        assert torch.equal(cell(grid, i + 1, 0), dst[i])
        mixed = [cell(grid, i + 1, j + 1) for j in range(len(sources))]
        assert not torch.equal(mixed[0], dst[i]) and not torch.equal(mixed[0], mixed[1])


def test_a_list_of_layer_names_draws_one_mixing_figure_each(files, tmp_path):
    paths = run_sample(files["export"], tmp_path, "figure=mixing", "mixing.layers=[coarse,middle]")
    assert [p.name for p in paths] == ["mixing_coarse.png", "mixing_middle.png"]
    (path,) = run_sample(files["export"], tmp_path, "figure=mixing", "mixing.layers=[0,5]")
    assert path.name == "mixing_layers0_5.png"


@pytest.mark.parametrize("spec", ["coarse", "middle", [1, 4]])
def test_mixing_cells_copy_exactly_the_chosen_layers(gen, spec):
    sources, destinations = [0, 1, 2], [3, 4]
    layers = S.layer_range(spec, gen.num_ws)
    n_src, R = len(sources), len(destinations)
    total = n_src + R + R * n_src
    grid = S.style_mixing_grid(gen, sources, destinations, layers, batch_size=total)
    assert grid.shape == ((R + 1) * (n_src + 1), 3, RES, RES)
    # The whole figure ran as one batch: sources, destinations, then the cells row by row.
    for index, adain in enumerate(gen.synthesis.adains()):
        style = adain.last_style
        assert style.shape[0] == total
        src, dst = style[:n_src], style[n_src : n_src + R]
        cells = style[n_src + R :].unflatten(0, (R, n_src))
        for r in range(R):
            for s in range(n_src):
                expected = src[s] if index in layers else dst[r]
                other = dst[r] if index in layers else src[s]
                assert torch.equal(cells[r, s], expected), (index, r, s)
                assert not torch.equal(cells[r, s], other)


# ---------------------------------------------------------------------------------------------
# Noise figures
# ---------------------------------------------------------------------------------------------


def test_noise_figures(gen):
    figs = S.noise_figures(gen, 3, 4, batch_size=BS)
    draws, std, layers = figs["draws"], figs["std"], figs["layers"]
    assert draws.shape == (4, 3, RES, RES) and std.shape == (RES, RES) and len(layers) == 4
    assert torch.equal(draws[:1], S.generate_images(gen, [3], batch_size=BS))  # draw 0 = usual
    assert not torch.equal(draws[0], draws[1]) and (std > 0).all()
    all_noise, no_noise = layers[0], layers[1]
    assert torch.equal(all_noise, draws[0])
    assert torch.equal(no_noise, S.generate_images(gen, [3], noise_mode="none", batch_size=BS)[0])
    assert len({tuple(x.flatten().tolist()) for x in layers}) == 4
    assert S.noise_layer_split(gen.num_ws) == ([0, 1, 2], [3, 4, 5])  # below 64px: upper half
    assert S.noise_layer_split(12) == (list(range(8)), [8, 9, 10, 11])  # paper: 64px and up


def test_noise_figure_files(files, tmp_path):
    paths = run_sample(files["export"], tmp_path, "figure=noise", "noise_figure.draws=3")
    assert [p.name for p in paths] == [
        "noise_draws_seed0.png",
        "noise_std_seed0.png",
        "noise_layers_seed0.png",
    ]
    with Image.open(paths[1]) as std:
        assert std.mode == "L" and std.size == (RES, RES)
        assert std.getextrema()[1] == 255
    assert png(paths[2]).shape[:2] == (RES + 2 * PAD, 4 * (RES + PAD) + PAD)


# ---------------------------------------------------------------------------------------------
# Interpolation
# ---------------------------------------------------------------------------------------------


def test_slerp_endpoints_and_norm():
    a, b = S.latents_for_seeds([0, 1], 16).split(1)
    assert torch.allclose(S.slerp(a, b, 0.0), a) and torch.allclose(S.slerp(a, b, 1.0), b)
    mid = S.slerp(a / a.norm(), b / b.norm(), 0.5)
    assert torch.allclose(mid.norm(), torch.tensor(1.0))


def _slerp_by_hand(a: np.ndarray, b: np.ndarray, t: float) -> np.ndarray:
    """Shoemake's slerp in float64: sin((1-t)Ω)/sin Ω · a + sin(tΩ)/sin Ω · b."""
    omega = np.arccos(np.dot(a / np.linalg.norm(a), b / np.linalg.norm(b)))
    return (np.sin((1 - t) * omega) * a + np.sin(t * omega) * b) / np.sin(omega)


@pytest.mark.parametrize("space", ["w", "z"])
def test_interpolation_frames(gen, space):
    """3 steps per segment over seeds 0 -> 1 -> 2: frame 3k is seed k, the frames between are the
    slerp (z) or lerp (w) of the two keys, every frame with seed 0's noise."""
    frames = S.interpolation_frames(gen, [0, 1, 2], space=space, steps=3, batch_size=BS)
    assert frames.shape == (7, 3, RES, RES)
    z = S.latents_for_seeds([0, 1, 2], gen.z_dim).double().numpy()
    noise = dict(noise_seeds=[0], batch_size=BS)
    for frame in range(7):
        k, t = min(frame // 3, 1), (frame - 3 * min(frame // 3, 1)) / 3
        if space == "z":
            zt = torch.from_numpy(_slerp_by_hand(z[k], z[k + 1], t)).float()[None]
            expected = S.generate_images(gen, z=zt, **noise)
        else:
            keys = gen.map(torch.from_numpy(z[k : k + 2]).float())  # psi = 1: untruncated ws
            ws = keys[:1] + t * (keys[1:] - keys[:1])
            expected = S.render_ws(gen, ws, noise_seeds=[0], batch_size=BS)
        torch.testing.assert_close(
            frames[frame], expected[0], atol=1e-4, rtol=0, msg=lambda m, f=frame: f"frame {f}: {m}"
        )
    # The keys are the seeds' own images (rendered with the first seed's noise).
    for frame, seed in ((0, 0), (3, 1), (6, 2)):
        z_seed = S.latents_for_seeds([seed], gen.z_dim)
        key = S.generate_images(gen, z=z_seed, **noise)[0]
        torch.testing.assert_close(frames[frame], key, atol=1e-4, rtol=0)
    assert torch.equal(frames[0], S.generate_images(gen, [0], batch_size=BS)[0])
    assert all(not torch.equal(frames[i], frames[i + 1]) for i in range(6))


def test_interpolation_gif(files, tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(S, "mp4_available", lambda: False)
    with caplog.at_level("INFO"):
        paths = run_sample(
            files["export"],
            tmp_path,
            "figure=interpolation",
            "interpolation.seeds=[0,1,2]",
            "interpolation.steps=4",
            "interpolation.space=z",
        )
    assert [p.name for p in paths] == ["interp_z_seeds0-1-2.gif"]
    with Image.open(paths[0]) as gif:
        assert gif.n_frames == 2 * 4 + 1 and gif.size == (RES, RES)
    assert sum("mp4 skipped" in r.getMessage() for r in caplog.records) == 1


@pytest.mark.skipif(not S.mp4_available(), reason="imageio-ffmpeg is not installed")
def test_interpolation_mp4(files, tmp_path):
    paths = run_sample(files["export"], tmp_path, "figure=interpolation", "interpolation.steps=2")
    assert [p.suffix for p in paths] == [".gif", ".mp4"] and paths[1].stat().st_size > 0


# ---------------------------------------------------------------------------------------------
# Checkpoints, validation
# ---------------------------------------------------------------------------------------------


def test_last_ckpt_and_generator_pt_give_the_same_images(files, tmp_path):
    a = run_sample(files["export"], tmp_path / "a", "n=4", "noise=random")
    b = run_sample(files["ckpt"], tmp_path / "b", "n=4", "noise=random")
    assert a[0].read_bytes() == b[0].read_bytes()


def test_checkpoint_of_an_earlier_stage_renders_at_its_resolution(files, tmp_path):
    paths = run_sample(
        files["ckpt8"], tmp_path, "figure=[faces,mixing]", "n=1", "psi=[0.7,0.7,0.7,0.7]"
    )
    assert png(paths[0]).shape[:2] == (8, 8)  # one image: the grid is the image
    assert png(paths[1]).shape[:2] == (5 * (8 + PAD) + PAD, 6 * (8 + PAD) + PAD)  # 4+1 × 5+1
    with pytest.raises(ConfigError, match=r"'middle'.*empty.*8px"):
        run_sample(files["ckpt8"], tmp_path, "figure=mixing", "mixing.layers=middle")


def test_smoke_run_checkpoints_load(smoke_run, tmp_path):
    ckpt, export = smoke_run / "checkpoints" / "last.ckpt", smoke_run / "generator.pt"
    info_ckpt = load_generator(ckpt)[1]
    info_export = load_generator(export)[1]
    assert info_ckpt["resolution"] == info_export["resolution"]
    res = info_export["resolution"]
    a = run_sample(ckpt, tmp_path / "a", "n=4", "figure=[faces,mixing]")
    b = run_sample(export, tmp_path / "b", "n=4", "figure=[faces,mixing]")
    assert png(a[0]).shape[:2] == png(b[0]).shape[:2] == (2 * (res + PAD) + PAD,) * 2
    # generator.pt is exported at the end of the run, from the same EMA weights as last.ckpt.
    assert info_ckpt["images_seen"] == info_export["images_seen"] > 0
    assert a[0].read_bytes() == b[0].read_bytes()


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["n=0"], "n must be"),
        (["psi=2.5"], "out of range"),
        (["psi=[1,1]"], "per-layer psi"),
        (["cutoff=-1"], "cutoff"),
        (["noise=loud"], "noise must be"),
        (["figure=portraits"], "unknown figure"),
        (["figure=mixing", "mixing.layers=fine"], "empty"),
        (["figure=mixing", "mixing.layers=eyes"], "unknown layer range"),
        (["figure=mixing", "mixing.sources=[]"], "at least 1"),
        (["figure=truncation", "truncation.psis=[0,3]"], "out of range"),
        (["figure=noise", "noise_figure.draws=1"], ">= 2"),
        (["figure=interpolation", "interpolation.seeds=[4]"], "at least 2"),
        (["figure=interpolation", "interpolation.space=x"], "space"),
        (["seed=-3"], "non-negative"),
        (["batch_size=0"], "batch_size"),
        (["grid_max=0"], "nothing"),
        (["device=tpu"], "device"),
    ],
)
def test_bad_values_are_one_line_config_errors(files, tmp_path, overrides, message):
    with pytest.raises(UserError, match=message) as err:
        run_sample(files["export"], tmp_path, *overrides)
    assert "\n" not in str(err.value)
    assert not any(tmp_path.iterdir())  # validated before anything is written


def test_noise_mode_alias():
    assert S.check_noise_mode("fixed") == "const"
    assert S.check_noise_mode("none") == "none"


# ---------------------------------------------------------------------------------------------
# The CLI, end to end (subprocesses started together, once)
# ---------------------------------------------------------------------------------------------

CLI_ERRORS = {
    "missing_ckpt": ["ckpt={tmp}/nope/last.ckpt"],
    "n_zero": ["ckpt={export}", "n=0"],
    "psi_five": ["ckpt={export}", "psi=5"],
    "not_ours": ["ckpt={random}"],
}


@pytest.fixture(scope="module")
def cli_runs(files, tmp_path_factory) -> dict[str, tuple[subprocess.CompletedProcess, Path]]:
    tmp = tmp_path_factory.mktemp("cli")
    fmt = {"tmp": tmp, "export": files["export"], "random": files["random"]}
    jobs = {name: [a.format(**fmt) for a in args] for name, args in CLI_ERRORS.items()}
    jobs["ok"] = [
        f"ckpt={files['ckpt']}",
        "figure=all",
        "n=4",
        "truncation.seeds=[0,1]",
        "truncation.psis=[-1,0,1]",
        "mixing.sources=[0,1]",
        "mixing.destinations=[2]",
        "noise_figure.draws=2",
        "interpolation.steps=2",
    ]
    procs = {}
    for name, args in jobs.items():
        run_dir = tmp / name
        cmd = [sys.executable, "sample.py", *args, f"hydra.run.dir={run_dir}"]
        procs[name] = (
            subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE),
            run_dir,
        )
    results = {}
    for name, (proc, run_dir) in procs.items():
        out, err = proc.communicate(timeout=300)
        results[name] = (
            subprocess.CompletedProcess(proc.args, proc.returncode, out.decode(), err.decode()),
            run_dir,
        )
    return results


def test_cli_writes_every_figure(cli_runs):
    proc, run_dir = cli_runs["ok"]
    assert proc.returncode == 0, proc.stderr
    names = sorted(p.name for p in run_dir.iterdir() if p.is_file() and p.suffix != ".log")
    assert names == sorted(
        [
            "faces_seed0_n4_psi1.png",
            "truncation_seeds0-1_psi-1..1_cutoff8.png",
            "mixing_coarse.png",
            "noise_draws_seed0.png",
            "noise_std_seed0.png",
            "noise_layers_seed0.png",
            "interp_w_seeds0-1-2.gif",
            *(["interp_w_seeds0-1-2.mp4"] if S.mp4_available() else []),
        ]
    )
    assert (run_dir / ".hydra" / "config.yaml").is_file()


@pytest.mark.parametrize("case", sorted(CLI_ERRORS))
def test_cli_bad_input_is_one_line_exit_2(cli_runs, case):
    proc, _ = cli_runs[case]
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
