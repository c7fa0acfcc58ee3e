"""explore.py: the page serves what sample.py writes, through Gradio's own client and in a real
headless Chromium; bad uploads are refused on the page and nothing lands outside the run folder.

One page is served for the module (a tiny 16px generator with two planted attribute
directions, ``batch_size=8``, a free local port); every comparison runs sample.py in-process
with the same seed, settings and batch size.
"""

from __future__ import annotations

import io
import socket
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from PIL import Image

from benchmarks.explorer_screenshot import chromium_path, drive_page
from sample import sample
from stylegan import sampling
from stylegan.attributes import Directions, store_directions
from stylegan.checkpoints import atomic_torch_save, generator_export, load_generator
from stylegan.errors import UserError
from stylegan.imaging import to_uint8
from stylegan.networks import Generator
from stylegan.projection import load_latent

ROOT = Path(__file__).resolve().parents[1]
TINY_G = {
    "resolution": 16,
    "z_dim": 16,
    "w_dim": 16,
    "mapping_layers": 2,
    "channel_base": 256,
    "channel_max": 16,
}
BS = 8
PAD = 2  # grid padding of stylegan.imaging.grid_image
MAX_BYTES = 20_000  # upload.max_bytes of the served page


def tiny_generator() -> Generator:
    torch.manual_seed(0)
    G = Generator(**TINY_G)
    with torch.no_grad():
        for name, param in G.named_parameters():
            if name.endswith("noise.weight"):
                param.normal_(0.0, 0.5)  # trained-like noise strengths (0 at init)
        G.w_avg.normal_()
    return G.eval().requires_grad_(False)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def compose_conf(name: str, *overrides: str):
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return compose(config_name=name, overrides=list(overrides))


def pixels(path_or_bytes) -> np.ndarray:
    data = path_or_bytes if isinstance(path_or_bytes, bytes) else Path(path_or_bytes).read_bytes()
    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(im.convert("RGB"))


def hwc(image: torch.Tensor) -> np.ndarray:
    """One float image [C, r, r] as the uint8 [r, r, C] a PNG of it holds."""
    return to_uint8(image[None])[0].permute(1, 2, 0).numpy()


def cell(grid: np.ndarray, row: int, col: int, r: int = 16) -> np.ndarray:
    """Face (row, col) of a grid PNG; a grid of one face is that face (make_grid adds no pad)."""
    if grid.shape[:2] == (r, r):
        return grid
    y, x = PAD + row * (r + PAD), PAD + col * (r + PAD)
    return grid[y : y + r, x : x + r]


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory) -> dict[str, Path]:
    """generator.pt with directions Smiling/Male, the same without, and a last.ckpt of the same
    weights taken mid-growth (trained to 8px)."""
    root = tmp_path_factory.mktemp("explore_ckpts")
    G = tiny_generator()
    paths = {
        "dirs": root / "generator.pt",
        "plain": root / "plain.pt",
        "ckpt8": root / "last8.ckpt",
    }
    for key in ("dirs", "plain"):
        atomic_torch_save(generator_export(G, resolution=16, images_seen=0), paths[key])
    normals = torch.nn.functional.normalize(
        torch.randn(2, 16, generator=torch.Generator().manual_seed(1))
    )
    store_directions(
        paths["dirs"],
        Directions(
            ["Smiling", "Male"], normals, torch.zeros(2), torch.tensor([1.5, 0.8]), resolution=16
        ),
    )
    atomic_torch_save(
        {
            "state_dict": {"generator_ema." + k: v for k, v in G.state_dict().items()},
            "stylegan": {
                "format": 1,
                "generator_config": G.config,
                "progress": {"images_seen": 0, "resolution": 8, "alpha": 1.0, "phase_index": 0},
            },
        },
        paths["ckpt8"],
    )
    return paths


@pytest.fixture(scope="module")
def served(ckpts, tmp_path_factory):
    """The page on a free port, and a gradio_client Client for it."""
    from gradio_client import Client

    import explore

    run_dir = tmp_path_factory.mktemp("explore_run")
    cfg = compose_conf(
        "explore",
        f"ckpt={ckpts['dirs']}",
        f"out_dir={run_dir}",
        "device=cpu",
        f"batch_size={BS}",
        f"server.port={free_port()}",
        f"upload.max_bytes={MAX_BYTES}",
        "projection.steps=3",
    )
    page = explore.explore(cfg, block=False)
    client = Client(
        page.url, download_files=str(tmp_path_factory.mktemp("downloads")), verbose=False
    )
    yield page, client
    client.close()
    page.close()


def run_sample(tmp_path: Path, ckpt: Path, *overrides: str) -> list[Path]:
    return sample(
        compose_conf(
            "sample",
            f"ckpt={ckpt}",
            f"out_dir={tmp_path}",
            f"batch_size={BS}",
            "device=cpu",
            *overrides,
        )
    )


FACES = [  # seed, grid, psi, cutoff, noise, resolution
    (3, 2, 0.7, 4, "random", 16),
    (5, 1, 1.0, 6, "const", 16),
    (11, 1, 0.5, 6, "none", 8),  # rendered at 8px: what sample.py draws from a last.ckpt at 8px
]


@pytest.mark.parametrize(("seed", "grid", "psi", "cutoff", "noise", "res"), FACES)
def test_faces_are_the_bytes_sample_py_writes(
    served, ckpts, tmp_path, seed, grid, psi, cutoff, noise, res
):
    _, client = served
    shown, timing, png, latent = client.predict(
        seed, grid, psi, cutoff, noise, res, api_name="/faces"
    )
    ckpt = ckpts["dirs"] if res == 16 else ckpts["ckpt8"]
    [written] = run_sample(
        tmp_path,
        ckpt,
        f"n={grid * grid}",
        f"seed={seed}",
        f"psi={psi}",
        f"cutoff={cutoff}",
        f"noise={noise}",
    )
    assert Path(png["value"]).name == written.name  # sample.py's name for the same faces
    assert Path(png["value"]).read_bytes() == written.read_bytes()  # the download: same bytes
    assert np.array_equal(pixels(shown), pixels(written))  # what the page shows: same pixels
    assert "rendered in" in timing and f"at {res}px" in timing
    # The latent file renders the seed's face (top-left) again, with its noise.
    G = load_generator(ckpts["dirs"])[0]
    lat = load_latent(latent["value"], G)
    again = sampling.render_ws(
        G,
        lat.ws[None],
        resolution=res,
        noise_mode="random",
        noise_seeds=[0],
        row_noise_maps=[lat.noise],
        batch_size=BS,
    )
    assert np.array_equal(hwc(again[0]), cell(pixels(written), 0, 0, res))


def test_changing_a_control_changes_the_image(served):
    _, client = served
    first = pixels(client.predict(3, 1, 1.0, 6, "random", 16, api_name="/faces")[0])
    for args in [
        (4, 1, 1.0, 6, "random", 16),
        (3, 1, 0.2, 6, "random", 16),
        (3, 1, 0.2, 2, "random", 16),
        (3, 1, 1.0, 6, "none", 16),
    ]:
        assert not np.array_equal(pixels(client.predict(*args, api_name="/faces")[0]), first), args


def test_style_mixing_is_the_row_of_sample_pys_figure(served, ckpts, tmp_path):
    _, client = served
    shown, *_ = client.predict(
        1, 2, "coarse", 0.8, 6, "random", 16, False, False, api_name="/mixing"
    )
    [fig] = run_sample(
        tmp_path,
        ckpts["dirs"],
        "figure=mixing",
        "mixing.sources=[1]",
        "mixing.destinations=[2]",
        "mixing.layers=coarse",
        "psi=0.8",
        "cutoff=6",
    )
    page, paper = pixels(shown), pixels(fig)  # [source, destination, mixed] | Fig. 3's 2x2
    for k, (row, col) in enumerate([(0, 1), (1, 0), (1, 1)]):
        assert np.array_equal(cell(page, 0, k), cell(paper, row, col)), k
    assert not np.array_equal(cell(page, 0, 2), cell(page, 0, 1))  # the mix is neither source


def test_attribute_slider_is_sample_pys_conditional_edit(served, ckpts, tmp_path):
    _, client = served
    _, _, png, _ = client.predict(
        4, ["Male"], 0.7, 6, "random", 16, False, 2.0, 0.0, api_name="/edit"
    )
    [fig] = run_sample(
        tmp_path,
        ckpts["dirs"],
        "figure=edit",
        "attribute=Smiling",
        "keep=[Male]",
        "strengths=[2]",
        "edit.seeds=[4]",
        "psi=0.7",
        "cutoff=6",
    )
    assert Path(png["value"]).read_bytes() == fig.read_bytes()
    _, refused, _, _ = client.predict(
        4, ["Male"], 0.7, 6, "random", 16, False, 0.0, 1.0, api_name="/edit"
    )
    assert refused.startswith("⚠") and "keeping it" in refused  # Male moved while kept


def test_the_attributes_tab_is_hidden_without_directions(ckpts, tmp_path):
    from stylegan.explorer import Explorer, build_page

    def attributes_tab(ckpt):
        G, info = load_generator(ckpt)
        demo = build_page(Explorer(G, info, ckpt=ckpt, batch_size=BS), tmp_path)
        [tab] = [c for c in demo.config["components"] if c["props"].get("label") == "Attributes"]
        ids = [c["props"].get("elem_id") or "" for c in demo.config["components"]]
        return tab["props"]["visible"], sum(i.startswith("attr-") for i in ids)

    assert attributes_tab(ckpts["dirs"]) == (True, 2)  # one slider per stored direction
    assert attributes_tab(ckpts["plain"]) == (False, 0)


def test_bad_uploads_are_refused_on_the_page(served, tmp_path):
    from gradio_client import handle_file

    page, client = served
    text = tmp_path / "face.png"
    text.write_text("not an image at all")
    status, *_ = client.predict(handle_file(str(text)), api_name="/project")
    assert status.startswith("⚠") and "not an image" in status
    big = tmp_path / "big.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (128, 128, 3), np.uint8)).save(big)
    assert big.stat().st_size > MAX_BYTES
    with pytest.raises(Exception, match=r"size|large|413"):  # Gradio stops it while it streams
        client.predict(handle_file(str(big)), api_name="/project")
    assert not (page.run_dir / "uploads").exists() or not list((page.run_dir / "uploads").iterdir())
    # The one that reached the server is in the run folder's Gradio cache, nowhere else.
    assert any(
        p.read_bytes() == text.read_bytes()
        for p in (page.run_dir / "gradio").rglob("*")
        if p.is_file()
    )


def test_an_upload_is_projected_then_mixed_like_a_seed(served, ckpts, tmp_path):
    page, client = served
    face = tmp_path / "face.png"
    G = load_generator(ckpts["dirs"])[0]
    Image.fromarray(hwc(sampling.generate_images(G, [9], batch_size=BS)[0])).save(face)
    status, shown, latent = client.predict(handle_file_(face), api_name="/project")
    assert status.startswith("projected"), status
    assert pixels(shown).shape == (16 + 2 * PAD, 2 * 16 + 3 * PAD, 3)  # photo | projection
    lat = load_latent(latent["value"], G)
    assert list(lat.ws.shape) == [G.num_ws, G.w_dim]
    assert [p.parent for p in page.run_dir.rglob("upload_*.png")] == [page.run_dir / "uploads"]
    # This session's projected face is now a mixing source, rendered with its own noise maps.
    mixed, *_ = client.predict(
        0, 2, "coarse", 1.0, 6, "random", 16, True, False, api_name="/mixing"
    )
    again = sampling.render_ws(
        G,
        lat.ws[None],
        noise_mode="random",
        noise_seeds=[0],
        row_noise_maps=[lat.noise],
        batch_size=BS,
    )
    assert np.array_equal(cell(pixels(mixed), 0, 0), hwc(again[0]))
    projection = cell(pixels(shown), 0, 1).astype(int)
    assert np.abs(cell(pixels(mixed), 0, 0).astype(int) - projection).max() <= 2


def handle_file_(path: Path):
    from gradio_client import handle_file

    return handle_file(str(path))


@pytest.mark.skipif(
    chromium_path() is None, reason="needs Debian's chromium (apt-get install chromium)"
)
def test_the_page_in_headless_chromium(served, ckpts, tmp_path, artifact_dir):
    """Load the page, move ψ, change the seed: the image changes each time and ends as the
    face sample.py draws for that seed and ψ. The screenshot is ``test-artifacts/explorer.png``
    (the ``artifact_dir`` fixture)."""
    page, _ = served
    shot = artifact_dir / "explorer.png"
    shot.unlink(missing_ok=True)
    first, (after_psi, after_seed) = drive_page(page.url, shot, psi="0.5", seed="7")
    assert not np.array_equal(pixels(after_psi), pixels(first))
    assert not np.array_equal(pixels(after_seed), pixels(after_psi))
    [psi_only] = run_sample(tmp_path, ckpts["dirs"], "n=1", "seed=0", "psi=0.5", "cutoff=8")
    [written] = run_sample(tmp_path, ckpts["dirs"], "n=1", "seed=7", "psi=0.5", "cutoff=8")
    assert np.array_equal(pixels(after_psi), pixels(psi_only))
    assert np.array_equal(pixels(after_seed), pixels(written))
    with Image.open(shot) as im:
        assert im.size[0] >= 1280 and im.size[1] > 400


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("server.port=70000", "server.port must be 1 to 65535"),
        ("start.grid=9", "start.grid must be 1 to start.max_grid"),
        ("start.noise=loud", "noise"),
        ("projection.mode=z", "mode"),
        ("upload.max_bytes=0", "upload.max_bytes"),
    ],
)
def test_bad_options_are_one_line_before_anything_loads(ckpts, tmp_path, override, message):
    import explore

    cfg = compose_conf("explore", f"ckpt={ckpts['dirs']}", f"out_dir={tmp_path}", override)
    with pytest.raises(UserError, match=message) as err:
        explore.read_options(cfg)
    assert "\n" not in str(err.value)


def test_a_taken_port_is_one_line(served, ckpts, tmp_path):
    import explore

    port = int(served[0].url.rstrip("/").rsplit(":", 1)[1])
    cfg = compose_conf(
        "explore",
        f"ckpt={ckpts['dirs']}",
        f"out_dir={tmp_path}",
        "device=cpu",
        f"server.port={port}",
    )
    with pytest.raises(UserError, match=f"cannot serve on 127.0.0.1:{port}"):
        explore.explore(cfg, block=False)


def test_explore_py_imports_neither_torch_nor_gradio_before_its_address_answers():
    """The loading page is up before the slow imports: importing explore.py (and with it
    everything up to the loading page) must not import torch or Gradio."""
    import subprocess
    import sys

    code = "import sys, explore; print('torch' in sys.modules, 'gradio' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.split() == ["False", "False"]


def _get(url: str) -> tuple[int, dict[str, str], bytes]:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=5) as answer:
            return answer.status, dict(answer.headers), answer.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


@pytest.fixture
def gated_explore(ckpts, tmp_path, monkeypatch):
    """explore() in a thread whose page build waits for ``release``: (url, release, result)."""
    import threading

    import explore
    import stylegan.explorer

    gate = threading.Event()
    build_page = stylegan.explorer.build_page

    def gated_build_page(*args, **kwargs):
        assert gate.wait(120), "the test never released the page build"
        return build_page(*args, **kwargs)

    monkeypatch.setattr(stylegan.explorer, "build_page", gated_build_page)
    port = free_port()
    cfg = compose_conf(
        "explore", f"ckpt={ckpts['dirs']}", f"out_dir={tmp_path}", "device=cpu",
        f"server.port={port}",
    )  # fmt: skip
    result: dict[str, object] = {}

    def run() -> None:
        try:
            result["served"] = explore.explore(cfg, block=False)
        except BaseException as exc:  # reported by the test, not lost in the thread
            result["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{port}/", gate, thread, result
    gate.set()
    thread.join(120)
    if "served" in result:
        result["served"].close()


def _wait_answer(url: str, seconds: float = 60.0) -> tuple[int, dict[str, str], bytes]:
    import time

    deadline = time.monotonic() + seconds
    while True:
        try:
            return _get(url)
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def test_the_address_answers_while_the_page_loads_then_serves_the_page(gated_explore):
    from stylegan.loading_page import LOADING_HEADER

    url, gate, thread, result = gated_explore
    status, headers, body = _wait_answer(url)
    assert (status, headers.get(LOADING_HEADER)) == (200, "1")
    assert b"Loading the generator" in body
    status, headers, _ = _get(url + "config")  # Gradio's API is not there yet: retry later
    assert (status, headers.get("Retry-After")) == (503, "1")
    gate.set()
    thread.join(120)
    assert "error" not in result, result.get("error")
    status, headers, body = _get(url)
    assert status == 200 and LOADING_HEADER not in headers
    assert b"gradio" in body.lower()


def test_an_error_while_loading_frees_the_address(ckpts, tmp_path):
    import explore

    port = free_port()
    cfg = compose_conf(
        "explore", f"ckpt={tmp_path / 'missing.pt'}", f"out_dir={tmp_path}", "device=cpu",
        f"server.port={port}",
    )  # fmt: skip
    with pytest.raises(UserError, match="checkpoint not found"):
        explore.explore(cfg, block=False)
    with socket.socket() as s:  # the loading page let go of the port
        s.bind(("127.0.0.1", port))


@pytest.mark.skipif(
    chromium_path() is None, reason="needs Debian's chromium (apt-get install chromium)"
)
def test_a_browser_on_the_loading_page_ends_on_the_explorer(gated_explore, artifact_dir):
    """A browser that opens the address during the start sees the loading page (its screenshot:
    ``test-artifacts/explorer_loading.png``), and the page turns into the explorer by itself
    once it is served."""
    from playwright.sync_api import sync_playwright

    from benchmarks.explorer_screenshot import IMAGE, WAIT_MS

    url, gate, thread, result = gated_explore
    _wait_answer(url)
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=chromium_path(), headless=True, args=["--no-sandbox"]
        )
        try:
            page = browser.new_page()
            page.goto(url)
            assert "Loading the generator" in page.inner_text("body")
            page.screenshot(path=str(artifact_dir / "explorer_loading.png"))
            gate.set()
            page.locator(IMAGE).wait_for(timeout=WAIT_MS)
        finally:
            browser.close()
    thread.join(120)
    assert "served" in result, result.get("error")
