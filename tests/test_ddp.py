"""DDP traffic: 2 CPU processes (gloo) through train.py with ``trainer=ddp``; each step
all-reduces exactly the gradients of the parameters it updates, and every rank ends with the
same weights, EMA and buffers, across a resolution change and lazy R1 steps."""

import json
import re

import pytest
import torch
from conftest import run_cli
from probes import probe_env, probe_overrides

from train import build_module, build_schedule

# 3 steps at 8 px, 3 fading in 16 px, 2 at 16 px (16 images a step, 8 per rank); R1 every 2nd
# D step.
RUN = [
    "experiment=smoke",
    "trainer=ddp",
    "trainer.accelerator=cpu",
    "trainer.devices=2",
    "stage.stable_kimg=0.048",
    "stage.fade_kimg=0.048",
    "stage.total_kimg=0.128",
    "loss=bce",
    "loss.r1_interval=2",
    "logger=none",
    "callbacks.progress_bar=null",
    "trainer.enable_progress_bar=false",
]
BLOCK = re.compile(r"\.(blocks|to_rgb|from_rgb)\.(\d+)\.")


def in_use(name: str, resolution: int, alpha: float) -> bool:
    """Whether a G or D parameter takes part in the step at ``resolution`` and ``alpha``: every
    block up to the resolution, its toRGB/fromRGB, and the one below it while fading in."""
    match = BLOCK.search(name)
    if match is None:
        return True  # mapping network, D's output layers
    kind, r = match.group(1), int(match.group(2))
    if kind == "blocks":
        return r <= resolution
    return r == resolution or (alpha < 1.0 and r == resolution // 2)


def expected_bytes(network: torch.nn.Module, resolution: int, alpha: float) -> int:
    return sum(
        4 * p.numel()
        for name, p in network.named_parameters(prefix="x")
        if in_use(name, resolution, alpha)
    )


@pytest.mark.slow
def test_ddp_reduces_only_the_stepped_gradients_and_ranks_stay_equal(
    tmp_path, celeba_root, shared_cache_dir, train_config
):
    probe = tmp_path / "probe"
    result = run_cli(
        "train.py",
        *RUN,
        *probe_overrides(probe),
        "+callbacks.traffic._target_=stylegan.callbacks.traffic.AllReduceTraffic",
        f"+callbacks.traffic.dirpath={probe}",
        f"data.root={celeba_root}",
        f"paths.cache_dir={shared_cache_dir}",
        f"hydra.run.dir={tmp_path / 'run'}",
        env=probe_env(),
    )
    assert result.returncode == 0, result.stderr[-3000:]

    # Equal weights, EMA and buffers (w_avg, the fade-in state) on both ranks, bit for bit,
    # though each rank trained on its own half of every batch.
    r0, r1 = (torch.load(probe / f"rank{r}.pt", weights_only=False) for r in (0, 1))
    assert r0["world_size"] == 2 and r0["images_seen"] == r1["images_seen"] == 128
    assert not set(r0["image_hashes"]) & set(r1["image_hashes"])
    assert any(k.startswith("generator_ema.") for k in r0["state_dict"])
    differ = [k for k, v in r0["state_dict"].items() if not torch.equal(v, r1["state_dict"][k])]
    assert not differ, f"weights differ across ranks: {differ[:5]}"

    # Each step all-reduces the gradients its two optimizers stepped, and those are the
    # parameters in use at the step's resolution and alpha (never the blocks not grown yet).
    cfg = train_config()  # experiment=smoke: the same networks
    module = build_module(cfg, build_schedule(cfg.stage))
    D, G = module.discriminator, module.generator
    for rank in (0, 1):
        records = json.loads((probe / f"traffic_rank{rank}.json").read_text())
        phases = {(r["resolution"], r["alpha"] < 1.0) for r in records}
        assert phases == {(8, False), (16, True), (16, False)}
        for record in records:
            sent, stepped = record["all_reduced"], record["stepped_gradients"]
            resolution, alpha = record["resolution"], record["alpha"]
            assert sent["d"] == stepped["d"] == expected_bytes(D, resolution, alpha), record
            assert sent["g"] == stepped["g"] == expected_bytes(G, resolution, alpha), record
            assert sent["other"] == 4 * G.w_avg.numel()  # w_avg, averaged over the ranks
            assert sent["d"] < record["parameters"]["d"] and sent["g"] < record["parameters"]["g"]


# ---------------------------------------------------------------------------- average_gradients
def _average_on_rank(rank: int, port: int, out_dir: str) -> None:
    import torch.distributed as dist

    from stylegan.distributed import average_gradients

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    try:
        used, unused, overflowed = (torch.nn.Parameter(torch.zeros(3)) for _ in range(3))
        used.grad = torch.tensor([1.0, 2.0, 3.0]) * (rank + 1)  # rank 0: g, rank 1: 2g
        overflowed.grad = torch.tensor([float("inf") if rank else 1.0, 0.0, 0.0])
        average_gradients([used, unused, overflowed])
        torch.save([used.grad, unused.grad, overflowed.grad], f"{out_dir}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


@pytest.mark.slow  # spawns 2 processes
def test_average_gradients_gives_every_rank_the_mean_and_skips_unused(tmp_path):
    """The mean on every rank; a parameter without a gradient gets none; an fp16 overflow on one
    rank reaches every rank, so every GradScaler skips the same step and keeps the same scale."""
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_average_on_rank, args=(port, str(tmp_path)), nprocs=2, join=True)
    for rank in (0, 1):
        used, unused, overflowed = torch.load(tmp_path / f"rank{rank}.pt")
        assert torch.equal(used, torch.tensor([1.5, 3.0, 4.5]))
        assert unused is None
        assert overflowed[0] == float("inf")
