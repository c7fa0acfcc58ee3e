"""project.py and stylegan.projection: the projector recovers a face the generator made, its
formulas against projector.py's (noise regularisation, lr and noise ramps), target preparation
as the training data, the latent file and its mismatch check, the offline distances, and
sample.py's figures with a projected face where a seed goes.

Everything runs on a tiny 16px generator with few steps; the one CLI subprocess checks the
one-line exit-2 error.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import main_in_process
from hydra import compose, initialize_config_dir
from PIL import Image

from project import project_images
from sample import sample
from stylegan import projection as P
from stylegan import sampling
from stylegan.attributes.directions import Directions, store_directions
from stylegan.checkpoints import atomic_torch_save, generator_export, safe_torch_load
from stylegan.data.cache import Crop, load_resized
from stylegan.errors import ConfigError, UserError
from stylegan.imaging import to_uint8
from stylegan.networks import Discriminator, Generator

ROOT = Path(__file__).resolve().parents[1]
TINY_G = dict(resolution=16, z_dim=16, w_dim=16, mapping_layers=2, channel_base=256, channel_max=16)
RES, PAD, BS = 16, 2, 4


def tiny_generator(noise_strength: float = 0.5) -> Generator:
    torch.manual_seed(0)
    G = Generator(**TINY_G)
    with torch.no_grad():
        for name, param in G.named_parameters():
            if name.endswith("noise.weight"):
                param.normal_(0.0, noise_strength)
    return G.eval().requires_grad_(False)


def compose_conf(name: str, *overrides: str):
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return compose(config_name=name, overrides=list(overrides))


def png(path: Path) -> torch.Tensor:
    with Image.open(path) as im:
        return torch.from_numpy(np.asarray(im.convert("RGB")).copy())


def cell(grid: torch.Tensor, row: int, col: int) -> torch.Tensor:
    top, left = PAD + row * (RES + PAD), PAD + col * (RES + PAD)
    return grid[top : top + RES, left : left + RES].int()


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the tiny networks: threads only contend on a shared CPU
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict:
    """A generator.pt with one attribute direction, a 178x218 'photo', and project.py's output
    for it (3 steps, with video)."""
    root = tmp_path_factory.mktemp("projection")
    G = tiny_generator()
    gen_pt = root / "generator.pt"
    atomic_torch_save(generator_export(G, resolution=RES, images_seen=0), gen_pt)
    normal = torch.zeros(1, G.w_dim)
    normal[0, 0] = 1.0
    store_directions(gen_pt, Directions(["Smiling"], normal, torch.zeros(1), torch.ones(1)))
    rng = np.random.default_rng(0)
    photo = root / "photo.jpg"
    Image.fromarray(rng.integers(0, 255, (218, 178, 3), dtype=np.uint8)).save(photo)
    out = root / "out"
    written = project_images(compose_conf(
        "project", f"ckpt={gen_pt}", f"image={photo}", f"out_dir={out}", "steps=3",
        "distance=pixels", "schedule.w_avg_samples=64", "video=true", "video_every=1",
        "mp4=false", "progress=false",
    ))  # fmt: skip
    return {"G": G, "gen": gen_pt, "photo": photo, "out": out, "written": written, "root": root}


# ---------------------------------------------------------------------------------------------
# The optimisation
# ---------------------------------------------------------------------------------------------


def generated_target(G: Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """(w [w_dim], its image [3, R, R] without noise): half way from the w statistics' mean to
    seed 7's w, so the tiny random generator's landscape around the start is benign."""
    mean, _ = P.optimizer.w_statistics(G, 500)
    w = mean + 0.5 * (G.mapping(sampling.latents_for_seeds([7], G.z_dim))[0] - mean)
    return w, G.synthesis(w[None, None].expand(1, G.num_ws, -1), noise_mode="none")[0]


def test_projection_recovers_a_face_the_generator_made():
    """W (projector.py's mode): a target rendered from a known w (noise strengths 0, so the
    noise maps cannot explain it) is found again: distance below a small bound, the image
    matches and so does the w."""
    G = tiny_generator(noise_strength=0.0)
    w, target = generated_target(G)
    schedule = P.Schedule(w_avg_samples=500)
    result = P.project(G, target, mode="w", steps=120, distance="pixels", schedule=schedule)
    assert result.history[0] > 0.5  # the start (the samples' mean w) is far from the face
    assert result.distance < 1e-3
    assert result.psnr > 35
    assert (result.image - target).abs().max() < 0.1
    assert result.ws.shape == (G.num_ws, G.w_dim)
    assert torch.equal(result.ws, result.ws[:1].expand_as(result.ws))  # one w for all layers
    assert float((result.ws[0] - w).norm() / w.norm()) < 0.02
    for noise in result.noise:  # normalised after every step
        assert abs(float(noise.mean())) < 1e-5 and float(noise.square().mean()) == pytest.approx(1)


def test_w_plus_projection_has_one_w_per_layer_and_approaches_the_face():
    """W+ on the same target: the layers move apart (one w each) and the distance falls an order
    of magnitude in the same steps (W+ wanders more on this random generator than W)."""
    G = tiny_generator(noise_strength=0.0)
    _, target = generated_target(G)
    schedule = P.Schedule(w_avg_samples=500)
    result = P.project(G, target, mode="w_plus", steps=120, distance="pixels", schedule=schedule)
    assert result.ws.shape == (G.num_ws, G.w_dim)
    assert not torch.equal(result.ws[0], result.ws[1])
    assert result.distance < 0.1 * result.history[0]
    assert result.mode == "w_plus" and result.meta["mode"] == "w_plus"


@pytest.mark.parametrize("mode", ["w", "w_plus"])
def test_a_batch_projects_each_face_as_it_would_alone(mode):
    """project_batch on three different faces returns, for each, what project finds for that
    face alone with its seed: the faces share only the passes, never the optimisation
    (per-face noise regularisation, normalisation and random draws)."""
    G = tiny_generator(noise_strength=0.5)
    targets = torch.stack([P.optimizer.render_projection(
        G, G.mapping(sampling.latents_for_seeds([s], G.z_dim))[:, None].expand(1, G.num_ws, -1),
        [], RES)[0] for s in (3, 4, 5)])  # fmt: skip
    schedule = P.Schedule(w_avg_samples=200)
    together = P.project_batch(G, targets, mode=mode, steps=25, distance="pixels",
                               schedule=schedule, seed=[1, 2, 3])  # fmt: skip
    for target, batched, seed in zip(targets, together, [1, 2, 3], strict=True):
        alone = P.project(G, target, mode=mode, steps=25, distance="pixels", schedule=schedule,
                          seed=seed)  # fmt: skip
        assert batched.meta["seed"] == seed
        # 2e-3, not 1e-4: on an AVX2-only CPU (AMD EPYC) batched and single passes sum in another
        # order, and 25 Adam steps grow that to 5e-4; sharing anything across faces moves far more.
        torch.testing.assert_close(batched.ws, alone.ws, rtol=2e-3, atol=2e-3)
        for a, b in zip(batched.noise, alone.noise, strict=True):
            assert a.shape == b.shape == (1, 1, *a.shape[-2:])
            torch.testing.assert_close(a, b, rtol=2e-3, atol=2e-3)
        assert batched.history == pytest.approx(alone.history, rel=2e-3, abs=1e-6)
        assert batched.psnr == pytest.approx(alone.psnr, rel=2e-3)
    assert len({round(r.psnr, 3) for r in together}) == 3  # three different faces


def test_noise_regularization_per_face_is_each_face_alone():
    gen = torch.Generator().manual_seed(5)
    maps = [torch.randn(3, 1, r, r, generator=gen) for r in (4, 8, 16)]
    per_face = P.noise_regularization_per_face(maps)
    assert per_face.shape == (3,)
    for i in range(3):
        alone = _official_noise_reg([m[i, 0].double().numpy() for m in maps])
        assert float(per_face[i]) == pytest.approx(alone, rel=1e-5)
    P.normalize_noise_(maps)
    for m in maps:
        assert m.mean(dim=(1, 2, 3)).abs().max() < 1e-6
        torch.testing.assert_close(m.square().mean(dim=(1, 2, 3)), torch.ones(3))


def test_start_is_the_tracked_w_avg_and_w_std_the_official_spread():
    G = tiny_generator()
    mean, std = P.optimizer.w_statistics(G, 300)
    gen = torch.Generator().manual_seed(P.optimizer.W_STD_SEED)
    w = G.mapping(torch.randn(300, G.z_dim, generator=gen))
    assert torch.allclose(mean, w.mean(0), atol=1e-5)
    assert std == pytest.approx(float(np.sqrt(((w - w.mean(0)) ** 2).sum().item() / 300)), 1e-5)
    assert torch.equal(P.optimizer.start_w(G, mean), mean)  # never tracked: the samples' mean
    G.w_avg.fill_(0.25)
    assert torch.equal(P.optimizer.start_w(G, mean), torch.full((G.w_dim,), 0.25))


def _official_noise_reg(maps: list[np.ndarray]) -> float:
    """projector.py's loop written out with explicit indices (roll by 1 = the previous pixel,
    circularly) and 2x2 block means."""
    reg = 0.0
    for noise in maps:
        while True:
            H, W = noise.shape
            along_x = sum(noise[i, j] * noise[i, (j - 1) % W] for i in range(H) for j in range(W))
            along_y = sum(noise[i, j] * noise[(i - 1) % H, j] for i in range(H) for j in range(W))
            reg += (along_x / (H * W)) ** 2 + (along_y / (H * W)) ** 2
            if H <= 8:
                break
            noise = noise.reshape(H // 2, 2, W // 2, 2).mean(axis=(1, 3))
    return reg


def test_noise_regularization_is_the_official_formula():
    checker = torch.tensor([[(-1.0) ** (i + j) for j in range(4)] for i in range(4)])
    assert float(P.noise_regularization([checker[None, None]])) == pytest.approx(2.0)
    gen = torch.Generator().manual_seed(3)
    maps = [torch.randn(1, 1, r, r, generator=gen) for r in (4, 8, 16, 32)]
    maps[2] = maps[2] + torch.roll(maps[2], 1, dims=3)  # correlated: a large term
    expected = _official_noise_reg([m[0, 0].double().numpy() for m in maps])
    assert float(P.noise_regularization(maps)) == pytest.approx(expected, rel=1e-5)


def test_normalize_noise_gives_zero_mean_unit_mean_square():
    maps = [torch.randn(1, 1, 8, 8) * 3 + 2, torch.rand(1, 1, 4, 4)]
    P.normalize_noise_(maps)
    for m in maps:
        assert abs(float(m.mean())) < 1e-6 and float(m.square().mean()) == pytest.approx(1.0)


def test_lr_and_noise_ramps_are_projector_py():
    s = P.Schedule(steps=1000, initial_lr=0.1)
    assert s.learning_rate(0) == 0.0  # t / rampup = 0
    assert s.learning_rate(25) == pytest.approx(0.05)  # half way up the 5% linear ramp
    assert s.learning_rate(500) == pytest.approx(0.1)
    assert s.learning_rate(875) == pytest.approx(0.1 * (0.5 - 0.5 * math.cos(0.5 * math.pi)))
    assert s.w_noise_scale(0, 2.0) == pytest.approx(2.0 * 0.05)
    assert s.w_noise_scale(375, 2.0) == pytest.approx(2.0 * 0.05 * 0.25)
    assert s.w_noise_scale(750, 2.0) == 0.0
    with pytest.raises(ConfigError, match="lr_rampup_length"):
        P.Schedule(lr_rampup_length=0).check()


# ---------------------------------------------------------------------------------------------
# Targets, latent files, distances
# ---------------------------------------------------------------------------------------------


def test_targets_are_prepared_like_the_training_data(files, tmp_path):
    portrait = P.load_target_image(files["photo"], RES)
    arrays, _ = load_resized(files["photo"], Crop(), [RES])
    assert torch.equal(portrait, torch.from_numpy(arrays[RES]).float() / 127.5 - 1)
    square = tmp_path / "square.png"
    Image.fromarray(np.random.default_rng(1).integers(0, 255, (64, 64, 3), np.uint8)).save(square)
    arrays, _ = load_resized(square, Crop(size=1.0, center_y=0.5), [RES])  # no second crop
    assert torch.equal(P.load_target_image(square, RES), torch.from_numpy(arrays[RES]) / 127.5 - 1)


def test_bad_images_are_one_line_errors(tmp_path):
    wide = tmp_path / "wide.png"
    Image.new("RGB", (300, 100)).save(wide)
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not an image")
    with pytest.raises(UserError, match=r"300x100 .*not a face frame"):
        P.load_target_image(wide, RES)
    with pytest.raises(UserError, match="cannot read image"):
        P.load_target_image(broken, RES)
    with pytest.raises(UserError, match="image not found"):
        P.list_targets(tmp_path / "missing.jpg")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no images"):
        P.list_targets(tmp_path / "empty")


def test_project_py_writes_latent_pair_and_video(files):
    names = sorted(p.name for p in files["written"])
    assert names == ["photo.pt", "photo_projection.gif", "photo_target-projection.png"]
    payload = safe_torch_load(files["out"] / "photo.pt")  # weights_only, empty allow-list
    meta = payload["meta"]
    G = files["G"]
    assert payload["ws"].shape == (G.num_ws, G.w_dim)
    assert {k: meta[k] for k in ("w_dim", "num_ws", "mode", "resolution")} == {
        "w_dim": 16, "num_ws": G.num_ws, "mode": "w", "resolution": RES}  # fmt: skip
    assert meta["generator"] == P.generator_fingerprint(G)
    pair = png(files["out"] / "photo_target-projection.png")
    assert pair.shape == (RES + 2 * PAD, 2 * RES + 3 * PAD, 3)
    target = to_uint8(P.load_target_image(files["photo"], RES)[None])[0].permute(1, 2, 0)
    assert torch.equal(cell(pair, 0, 0), target.int())
    with Image.open(files["out"] / "photo_projection.gif") as gif:
        assert gif.n_frames >= 2 and gif.size == (2 * RES, RES)


def test_latent_from_another_generator_is_refused(files, tmp_path):
    latent = P.load_latent(files["out"] / "photo.pt", files["G"])
    other = Generator(**{**TINY_G, "w_dim": 8})
    with pytest.raises(UserError, match=r"another generator \(w_dim 16, 6 layers\).*w_dim 8"):
        P.check_latent(latent, other)
    bigger = Generator(**{**TINY_G, "resolution": 32})
    with pytest.raises(UserError, match=r"6 layers.*8 layers"):
        P.check_latent(latent, bigger)
    not_latent = tmp_path / "x.pt"
    torch.save({"weights": torch.zeros(2)}, not_latent)
    with pytest.raises(UserError, match="is not a projected latent"):
        P.load_latent(not_latent)


def test_distances_are_zero_on_the_target_and_differentiable(tmp_path):
    D = Discriminator(resolution=RES, channel_base=256, channel_max=16)
    ckpt = tmp_path / "last.ckpt"
    torch.save({"state_dict": {f"discriminator.{k}": v for k, v in D.state_dict().items()}}, ckpt)
    from stylegan.attributes.classifier import AttributeClassifier, classifier_export

    clf = tmp_path / "classifier.pt"
    torch.manual_seed(0)
    c = AttributeClassifier(attributes=["Smiling", "Male"], resolution=RES)
    torch.save(classifier_export(c.eval(), crop=[0.72, 0.555]), clf)
    a, b = torch.rand(1, 3, RES, RES) * 2 - 1, torch.rand(1, 3, RES, RES) * 2 - 1
    for spec in ["pixels", "discriminator", "classifier", {"pixels": 2.0, "discriminator": 1.0}]:
        d = P.build_distance(spec, resolution=RES, ckpt=ckpt, classifier=clf)
        prepared = d.prepare(a)
        x = b.clone().requires_grad_(True)
        value = d(x, prepared).sum()
        value.backward()
        assert float(d(a, prepared).sum()) < 1e-6 < float(value.detach()), spec
        assert float(x.grad.abs().sum()) > 0, spec
    rebuilt = P.distances.discriminator_from_checkpoint(ckpt)
    assert torch.equal(rebuilt(a), D.eval()(a))
    pix = P.build_distance({"pixels": 2.0}, resolution=RES)
    assert float(pix(b, pix.prepare(a))) == pytest.approx(2 * float((a - b).square().mean()))
    with pytest.raises(UserError, match="needs a training checkpoint"):
        P.build_distance("discriminator", resolution=RES, ckpt=clf)
    with pytest.raises(UserError, match="lpips_weights="):
        P.build_distance("lpips", resolution=RES, lpips_weights=tmp_path / "no.pth")
    with pytest.raises(ConfigError, match="unknown distance"):
        P.parse_distance({"vgg": 1})


# ---------------------------------------------------------------------------------------------
# sample.py with a projected face
# ---------------------------------------------------------------------------------------------


def _direct(G: Generator, latent: P.Latent) -> torch.Tensor:
    """The latent rendered directly by the projector's own forward (its ws and noise maps)."""
    image = P.render_projection(G, latent.ws[None], latent.noise, RES)
    return to_uint8(image)[0].permute(1, 2, 0).int()


def test_sample_figures_take_a_latent_file(files, tmp_path):
    G, latent_path = files["G"], files["out"] / "photo.pt"
    latent = P.load_latent(latent_path, G)
    direct = _direct(G, latent)
    written = sample(compose_conf(
        "sample", f"ckpt={files['gen']}", f"out_dir={tmp_path}", f"batch_size={BS}",
        "figure=[mixing,interpolation,edit]", "mixing.sources=[0,1]",
        f"mixing.destinations=[{latent_path},5]", f"interpolation.seeds=[{latent_path},0]",
        "interpolation.steps=2", "interpolation.mp4=false", "attribute=Smiling",
        f"edit.seeds=[{latent_path}]", "strengths=[0,2]",
    ))  # fmt: skip
    names = sorted(p.name for p in written)
    assert names == [
        "edit_Smiling_seedphoto_s0..2.png",
        "interp_w_seedsphoto-0.gif",
        "mixing_coarse.png",
    ]
    grid = png(tmp_path / "mixing_coarse.png")
    assert (cell(grid, 1, 0) - direct).abs().max() <= 1  # the real face's row starts with it
    edit = png(tmp_path / "edit_Smiling_seedphoto_s0..2.png")
    assert (cell(edit, 0, 0) - direct).abs().max() <= 1  # strength 0: the face itself
    assert (cell(edit, 0, 1) - direct).abs().max() > 1  # strength 2 changes it
    with Image.open(tmp_path / "interp_w_seedsphoto-0.gif") as gif:
        first = torch.from_numpy(np.asarray(gif.convert("RGB")).copy()).int()
    assert (first - direct).abs().float().mean() < 2  # GIF palette: close, not exact


def test_sample_refuses_a_latent_of_another_generator(files, tmp_path):
    other = tmp_path / "other.pt"
    latent = P.load_latent(files["out"] / "photo.pt")
    meta = {**latent.meta, "w_dim": 8}
    P.save_latent(other, latent.ws[:, :8], latent.noise, meta)
    with pytest.raises(UserError, match="projected with another generator"):
        sample(compose_conf(
            "sample", f"ckpt={files['gen']}", f"out_dir={tmp_path}", "figure=mixing",
            f"mixing.sources=[0,{other}]",
        ))  # fmt: skip
    with pytest.raises(ConfigError, match="space=z needs seeds"):
        sample(compose_conf(
            "sample", f"ckpt={files['gen']}", f"out_dir={tmp_path}", "figure=interpolation",
            f"interpolation.seeds=[0,{other}]", "interpolation.space=z",
        ))  # fmt: skip
    assert not any(tmp_path.glob("*.png"))


def test_project_cli_bad_image_is_one_line_exit_2(files, tmp_path, monkeypatch, capsys):
    """The command line (project.main, in-process: hydra parses sys.argv as in a shell)."""
    import project

    wide = tmp_path / "wide.png"
    Image.new("RGB", (400, 100)).save(wide)
    # main_in_process leaves Hydra's logging alone: a job-logging handler configured here would
    # outlive the test and print into later tests' captured stderr.
    status, lines = main_in_process(
        monkeypatch, capsys, project,
        f"ckpt={files['gen']}", f"image={wide}", f"out_dir={tmp_path / 'out'}",
        f"hydra.run.dir={tmp_path / 'run'}",
    )  # fmt: skip
    assert status == 2
    assert len(lines) == 1 and lines[0].startswith("error: ") and "not a face frame" in lines[0]
    assert not (tmp_path / "out").exists()
