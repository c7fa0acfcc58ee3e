"""The explorer's speed: how soon the page answers after start, and the time to render one face.

    python benchmarks/bench_explore.py CKPT [--renders 30] [--batch-sizes 1 32]

First ``python explore.py ckpt=CKPT`` is started as a user starts it, and the bench prints the
seconds from the command to its address's first answer (the loading page, before torch and Gradio
are imported) and to the explorer page itself (imports, generator load, page build). Then, for
each ``--batch-sizes`` value, ``explore.explore`` serves ``CKPT`` on a free port in this process
(the generator loaded once) and prints

- the seconds from the call to the page's first HTTP 200 (the generator load included, the
  Python start and imports not: they are paid before ``explore`` is called);
- the render time the page itself shows (``rendered in N ms``: the generator's work for one
  face, ``grid=1``) over ``--renders`` seeds, median and 90th percentile;
- the round trip of the same requests through ``gradio_client`` (queue, PNG encoding, HTTP).

Asserts nothing. Run it on an idle machine: its figures are wall-clock times.
"""

from __future__ import annotations

import argparse
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import explore  # noqa: E402
from stylegan.checkpoints import load_generator  # noqa: E402
from stylegan.loading_page import LOADING_HEADER  # noqa: E402

RENDERED = re.compile(r"rendered in \*\*(\d+) ms\*\*")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(url: str, timeout: float = 60.0) -> float:
    """Seconds until ``url`` answers 200."""
    start = time.perf_counter()
    while time.perf_counter() - start < timeout:
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return time.perf_counter() - start
        except OSError:
            time.sleep(0.02)
    raise TimeoutError(f"{url} did not answer in {timeout} s")


def shell_start(ckpt: str, timeout: float = 120.0) -> tuple[float, float]:
    """Seconds from ``python explore.py ckpt=CKPT`` to the first answer of its address and to
    the first answer that is the explorer page (not the loading page)."""
    port = free_port()
    run_dir = tempfile.mkdtemp(prefix="bench-explore-shell-")
    command = [sys.executable, str(ROOT / "explore.py"), f"ckpt={ckpt}", f"out_dir={run_dir}",
               "device=cpu", f"server.port={port}"]  # fmt: skip
    url = f"http://127.0.0.1:{port}/"
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    first = None
    try:
        while time.perf_counter() - start < timeout:
            if process.poll() is not None:
                raise RuntimeError(f"explore.py exited with status {process.returncode}")
            try:
                with urllib.request.urlopen(url, timeout=1) as response:
                    now = time.perf_counter() - start
                    first = now if first is None else first
                    if response.status == 200 and LOADING_HEADER not in response.headers:
                        return first, now
            except OSError:
                pass
            time.sleep(0.02)
        raise TimeoutError(f"{url} did not serve the explorer in {timeout} s")
    finally:
        process.terminate()
        process.wait(30)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("ckpt")
    parser.add_argument("--renders", type=int, default=30)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 32])
    parser.add_argument("--resolution", type=int, default=0, help="0 = the generator's")
    args = parser.parse_args()
    from gradio_client import Client

    _, info = load_generator(args.ckpt)
    res = args.resolution or int(info["resolution"])
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; {args.ckpt} at {res}px")
    loading, page = shell_start(args.ckpt)
    print(
        f"python explore.py: the address answered {loading:.2f} s after the command (loading "
        f"page), the explorer page {page:.2f} s after it",
        flush=True,
    )
    for batch_size in args.batch_sizes:
        run_dir = tempfile.mkdtemp(prefix="bench-explore-")
        with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
            overrides = [f"ckpt={args.ckpt}", f"out_dir={run_dir}", "device=cpu",
                         f"batch_size={batch_size}", f"server.port={free_port()}"]  # fmt: skip
            cfg = compose("explore", overrides)
        start = time.perf_counter()
        page = explore.explore(cfg, block=False)
        served = time.perf_counter() - start
        answered = served + wait_for(page.url)
        client = Client(page.url, download_files=run_dir, verbose=False)
        shown_ms, trips = [], []
        for seed in range(args.renders + 1):
            t0 = time.perf_counter()
            _, timing, _, _ = client.predict(seed, 1, 1.0, 8, "random", res, api_name="/faces")
            trip = time.perf_counter() - t0
            if seed == 0:
                continue  # the first render warms the kernels up
            shown_ms.append(float(RENDERED.search(timing).group(1)))
            trips.append(trip * 1000)
        client.close()
        page.close()
        print(
            f"batch_size={batch_size}: page answered {answered:.2f} s after explore() "
            f"(served {served:.2f} s); one face rendered in median "
            f"{statistics.median(shown_ms):.0f} ms, p90 {percentile(shown_ms, 0.9):.0f} ms "
            f"(the page's figure, {len(shown_ms)} seeds); round trip median "
            f"{statistics.median(trips):.0f} ms, p90 {percentile(trips, 0.9):.0f} ms",
            flush=True,
        )


if __name__ == "__main__":
    main()
