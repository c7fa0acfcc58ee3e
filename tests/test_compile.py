"""training.compile: alpha as a tensor (one graph per resolution), same outputs as eager, and a
compiled run whose penalty passes stay eager."""

from pathlib import Path

import pytest
import torch
from torch._dynamo.testing import CompileCounter

import stylegan.module as module_mod
from stylegan.networks import Discriminator, Generator
from train import train

TINY = dict(channel_base=128, channel_max=16)


def test_tensor_alpha_gives_the_float_alpha_outputs():
    torch.manual_seed(0)
    G = Generator(resolution=16, z_dim=16, w_dim=16, **TINY)
    D = Discriminator(resolution=16, **TINY)
    ws = G.map(torch.randn(4, 16))
    for alpha in (0.0, 0.3, 1.0):
        img = G.synthesis(ws, resolution=16, alpha=alpha, noise_mode="const")
        img_t = G.synthesis(ws, resolution=16, alpha=torch.tensor(alpha), noise_mode="const")
        torch.testing.assert_close(img_t, img)
        torch.testing.assert_close(
            D(img, resolution=16, alpha=torch.tensor(alpha)), D(img, resolution=16, alpha=alpha)
        )
    # alpha = 1: the blend returns the new level itself, bit for bit.
    assert torch.equal(
        G.synthesis(ws, resolution=16, alpha=torch.tensor(1.0), noise_mode="const"),
        G.synthesis(ws, resolution=16, alpha=1.0, noise_mode="const"),
    )


def test_a_new_alpha_is_new_data_not_a_new_graph():
    torch.manual_seed(0)
    G = Generator(resolution=16, z_dim=16, w_dim=16, **TINY)
    D = Discriminator(resolution=16, **TINY)
    counter = CompileCounter()
    synthesis = torch.compile(G.synthesis.forward, backend=counter, dynamic=False)
    discriminate = torch.compile(D.forward, backend=counter, dynamic=False)
    alpha = torch.tensor(0.0)
    ws = G.map(torch.randn(4, 16))
    for value in (0.0, 0.25, 0.5, 1.0):
        alpha.fill_(value)
        img = synthesis(ws, resolution=16, alpha=alpha, noise_mode="const")
        discriminate(img, resolution=16, alpha=alpha)
    assert counter.frame_count == 2  # one graph each for G and D, whatever alpha is
    synthesis(G.map(torch.randn(4, 16)), resolution=8, alpha=alpha, noise_mode="const")
    assert counter.frame_count == 3  # a new resolution compiles once


@pytest.mark.parametrize("loss", ["wgan_gp", "bce"])
def test_compiled_training_runs_with_eager_penalties(train_config, monkeypatch, loss):
    """D is compiled with aot_eager, which traces through AOTAutograd as inductor does and, like
    inductor, refuses a double backward: a penalty routed through the compiled D fails here (the
    plain ``eager`` backend would run it). G's synthesis, which no penalty differentiates twice,
    takes the cheaper ``eager`` backend; neither pays inductor's C++ compile times on a CPU."""
    compiled = []
    real_compile = torch.compile

    def test_backend(fn, **kwargs):
        name = getattr(fn, "__self__", fn).__class__.__name__
        compiled.append(name)
        backend = "aot_eager" if name == "Discriminator" else "eager"
        return real_compile(fn, backend=backend, **kwargs)

    monkeypatch.setattr(module_mod.torch, "compile", test_backend)
    cfg = train_config(
        "training.compile=true",
        f"loss={loss}",
        "stage.total_kimg=0.6",
        "data.limit=64",
    )
    train(cfg)
    assert sorted(compiled) == ["Discriminator", "SynthesisNetwork"]
    checkpoint = Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt"
    state = torch.load(checkpoint, weights_only=False)["state_dict"]
    assert all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point())
    assert not any("_orig_mod" in key for key in state)  # compiled callables are not submodules
