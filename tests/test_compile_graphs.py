"""training.compile with the module's real call pattern: synthesis under no_grad (D step) and with
grad (G step), D on fakes that do not and that do require grad. That is 2 graphs per network per
resolution, and over a 5-resolution run every one of them is compiled: none falls back to eager at
dynamo's default limit of 8 per function."""

import torch
from torch._dynamo.testing import CompileCounter

import stylegan.module as module_mod
from train import train


def test_five_resolutions_compile_two_graphs_per_network_each(train_config, monkeypatch):
    counters: dict[str, CompileCounter] = {}
    real_compile = torch.compile

    def counted(fn, **kwargs):
        counter = counters.setdefault(type(fn.__self__).__name__, CompileCounter())
        return real_compile(fn, backend=counter, **kwargs)

    monkeypatch.setattr(module_mod.torch, "compile", counted)
    for name in ("recompile_limit", "cache_size_limit"):  # the default, whatever ran before
        if hasattr(torch._dynamo.config, name):
            monkeypatch.setattr(torch._dynamo.config, name, 8)
    torch._dynamo.reset()
    train(
        train_config(
            "training.compile=true",
            "stage=128px",  # 8, 16, 32, 64, 128 px
            "stage.fade_kimg=0.016",
            "stage.stable_kimg=0.016",
            "stage.total_kimg=0.16",
            "stage.batch_size={8: 8, 16: 8, 32: 8, 64: 8, 128: 8}",
            "data.limit=16",
            "callbacks.samples=null",
        )
    )
    graphs = {name: counter.frame_count for name, counter in counters.items()}
    per_resolution = module_mod.GRAPHS_PER_RESOLUTION
    assert graphs == {"SynthesisNetwork": 5 * per_resolution, "Discriminator": 5 * per_resolution}
