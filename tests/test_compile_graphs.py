"""training.compile with the module's real call pattern: synthesis under no_grad (D step) and with
grad (G step); D on reals and fakes in one pass (D step), on fakes that require grad (G step), and,
with lazy R1, on fakes alone in an R1 step. That is 2 graphs per resolution for synthesis and 2 or
3 for D, and over a 5-resolution run every one of them is compiled: none falls back to eager at
dynamo's default limit of 8 per function."""

import pytest
import torch
from torch._dynamo.testing import CompileCounter

import stylegan.module as module_mod
from train import train


def _count_graphs(monkeypatch) -> dict[str, CompileCounter]:
    counters: dict[str, CompileCounter] = {}
    real_compile = torch.compile

    def counted(fn, **kwargs):
        counter = counters.setdefault(type(fn.__self__).__name__, CompileCounter())
        return real_compile(fn, backend=counter, **kwargs)

    monkeypatch.setattr(module_mod.torch, "compile", counted)
    return counters


@pytest.mark.parametrize(
    ("loss", "discriminator_graphs"),
    [
        (["loss=wgan_gp"], 2),  # joint pass, G step
        (["loss=bce", "loss.r1_interval=2"], 3),  # + fakes alone in the R1 steps
    ],
)
def test_five_resolutions_compile_every_graph_of_each_network(
    train_config, monkeypatch, loss, discriminator_graphs
):
    counters = _count_graphs(monkeypatch)
    # The default limit, whatever ran before. config.patch, not monkeypatch: monkeypatch's undo
    # deletes a config entry, and every later compile in the process failed on the missing key.
    torch._dynamo.reset()
    with torch._dynamo.config.patch(**{module_mod.recompile_limit_name(): 8}):
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
                *loss,
            )
        )
    graphs = {name: counter.frame_count for name, counter in counters.items()}
    assert discriminator_graphs <= module_mod.DISCRIMINATOR_GRAPHS_PER_RESOLUTION
    assert graphs == {
        "SynthesisNetwork": 5 * module_mod.SYNTHESIS_GRAPHS_PER_RESOLUTION,
        "Discriminator": 5 * discriminator_graphs,
    }


def test_fakes_in_another_layout_than_the_reals_add_no_discriminator_graph(
    train_config, monkeypatch
):
    """A compiled synthesis may return its images in another memory format than the reals' (on
    an H200 D compiled 3 graphs per resolution, not 2): D's input is given one layout first.
    (The joint real+fake pass makes them one tensor anyway; the G step's fakes go alone.)"""
    counters = _count_graphs(monkeypatch)
    real_generate = module_mod.StyleGANModule._generate

    def generate_nchw(self, batch_size):
        fake = real_generate(self, batch_size)
        assert self.memory_format == torch.channels_last  # the default, which reals get
        return fake.contiguous()  # plain NCHW strides, unlike the reals'

    monkeypatch.setattr(module_mod.StyleGANModule, "_generate", generate_nchw)
    torch._dynamo.reset()
    train(
        train_config(
            "training.compile=true",
            "stage=16px",
            "stage.fade_kimg=0.032",
            "stage.stable_kimg=0.032",
            "stage.total_kimg=0.112",
            "callbacks.samples=null",
            "loss=wgan_gp",
        )
    )
    assert counters["Discriminator"].frame_count == 2 * 2  # wgan_gp: joint pass, G step
