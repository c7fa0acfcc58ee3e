"""Behaviour of stylegan.networks: shapes, fade-in, truncation, mixing, equalized LR, gradients,
faithfulness to the paper's parameter count, config round trip and noise modes.

All networks use tiny widths so the file runs in seconds on a CPU; only the paper-width
parameter-count test builds full-size models (construction only, no forward).
"""

from __future__ import annotations

import copy
import json
import math

import pytest
import torch

from stylegan.networks import (
    DCGANDiscriminator,
    Discriminator,
    Generator,
    MappingNetwork,
    SynthesisNetwork,
    channels_at,
    mix_styles,
)
from stylegan.networks.layers import (
    AdaIN,
    Blur,
    EqualizedConv2d,
    EqualizedLinear,
    MinibatchStdDev,
    NoiseInjection,
    downsample2d,
    upsample2d,
)

TINY = {"channel_base": 1024, "channel_max": 16}  # widths 16 up to 64×64, 8 at 128, 4 at 256
TINY_G = {"z_dim": 16, "w_dim": 16, "mapping_layers": 2, **TINY}
ALL_RES = [4, 8, 16, 32, 64, 128, 256]


def make_g(resolution: int = 32, **kwargs) -> Generator:
    torch.manual_seed(0)
    return Generator(resolution=resolution, **{**TINY_G, **kwargs})


def make_d(resolution: int = 32, **kwargs) -> Discriminator:
    torch.manual_seed(1)
    return Discriminator(resolution=resolution, **{**TINY, **kwargs})


def randomize_noise_strengths(g: Generator) -> None:
    """Noise strengths start at 0; make them non-zero so noise actually shows in the output."""
    with torch.no_grad():
        for module in g.modules():
            if isinstance(module, NoiseInjection):
                module.weight.fill_(0.5)


@pytest.fixture(scope="module")
def g256() -> Generator:
    return make_g(256)


@pytest.fixture(scope="module")
def d256() -> Discriminator:
    return make_d(256)


# ----------------------------------------------------------------------------------------------
# Channels and validation.


def test_channels_at_paper_widths_and_table() -> None:
    widths = [channels_at(r) for r in [4, 8, 16, 32, 64, 128, 256, 512, 1024]]
    assert widths == [512, 512, 512, 512, 256, 128, 64, 32, 16]
    assert channels_at(64, channel_base=1024, channel_max=8) == 8
    assert channels_at(16, channels={16: 7}) == 7
    assert channels_at(16, channels={"16": 7}) == 7  # keys as read back from JSON/YAML
    with pytest.raises(ValueError, match="no width for resolution 32"):
        channels_at(32, channels={16: 7})


@pytest.mark.parametrize("bad", [100, 2048, 2, 0, -8, 64.0])
def test_channels_at_rejects_bad_resolution(bad) -> None:
    with pytest.raises(ValueError, match=rf"power of two between 4 and 1024, got {bad}"):
        channels_at(bad)


@pytest.mark.parametrize("bad", [100, 2048, 4, 0])
def test_networks_reject_bad_resolution(bad: int) -> None:
    msg = rf"resolution must be a power of two between 8 and 1024, got {bad}"
    with pytest.raises(ValueError, match=msg):
        Generator(resolution=bad, **TINY_G)
    with pytest.raises(ValueError, match=msg):
        Discriminator(resolution=bad, **TINY)
    with pytest.raises(ValueError, match=msg):
        DCGANDiscriminator(resolution=bad)


def test_forward_argument_validation(g256: Generator, d256: Discriminator) -> None:
    z = torch.randn(2, 16)
    with pytest.raises(ValueError, match=r"resolution must be one of \[4, 8, .*256\], got 100"):
        g256(z, resolution=100)
    with pytest.raises(ValueError, match=r"resolution must be one of .* got 512"):
        g256(z, resolution=512)
    with pytest.raises(ValueError, match=r"alpha must be in \[0, 1\], got 1.5"):
        g256(z, resolution=8, alpha=1.5)
    with pytest.raises(ValueError, match=r"noise_mode must be one of .* got 'fixed'"):
        g256(z, resolution=8, noise_mode="fixed")
    with pytest.raises(ValueError, match=r"truncation_psi must be a float or 14 per-layer"):
        g256.map(z, truncation_psi=[0.5, 0.7])
    with pytest.raises(ValueError, match=r"z must have shape \[N, 16\], got \[2, 8\]"):
        g256(torch.randn(2, 8), resolution=8)
    with pytest.raises(
        ValueError, match=r"img must have shape \[N, 3, 16, 16\] .* got \[2, 3, 8, 8\]"
    ):
        d256(torch.randn(2, 3, 8, 8), resolution=16)
    with pytest.raises(ValueError, match=r"alpha must be in \[0, 1\]"):
        d256(torch.randn(2, 3, 8, 8), resolution=8, alpha=-0.1)


# ----------------------------------------------------------------------------------------------
# Shapes.


@pytest.mark.parametrize("alpha", [0.0, 0.5, 1.0])
@pytest.mark.parametrize("resolution", ALL_RES)
def test_output_shapes(g256: Generator, d256: Discriminator, resolution: int, alpha: float) -> None:
    z = torch.randn(2, 16)
    with torch.no_grad():
        img = g256(z, resolution=resolution, alpha=alpha)
        assert img.shape == (2, 3, resolution, resolution)
        assert torch.isfinite(img).all()
        logits = d256(img, resolution=resolution, alpha=alpha)
    assert logits.shape == (2,)
    assert torch.isfinite(logits).all()


def test_num_ws_and_state_dict_keys_fixed(g256: Generator) -> None:
    assert g256.num_ws == 2 * int(math.log2(256)) - 2 == 14
    assert [g256.num_ws_at(r) for r in ALL_RES] == [2, 4, 6, 8, 10, 12, 14]
    assert g256.mapping(torch.randn(3, 16)).shape == (3, 16)
    ws = g256.map(torch.randn(3, 16))
    assert ws.shape == (3, 14, 16)
    # Every block exists from construction on, whatever the active resolution.
    keys = set(g256.state_dict())
    for r in ALL_RES:
        assert f"synthesis.to_rgb.{r}.weight" in keys
    assert "synthesis.blocks.256.conv1.weight" in keys
    assert "w_avg" in keys


def test_synthesis_ignores_ws_beyond_active_resolution(g256: Generator) -> None:
    ws = g256.map(torch.randn(2, 16))
    ws_other = ws.clone()
    ws_other[:, g256.num_ws_at(16) :] = torch.randn_like(ws_other[:, g256.num_ws_at(16) :])
    with torch.no_grad():
        a = g256.synthesis(ws, resolution=16, alpha=0.5, noise_mode="const")
        b = g256.synthesis(ws_other, resolution=16, alpha=0.5, noise_mode="const")
        c = g256.synthesis(ws[:, :6], resolution=16, alpha=0.5, noise_mode="const")
    assert torch.equal(a, b)
    assert torch.equal(a, c)


# ----------------------------------------------------------------------------------------------
# Progressive fade-in.


@pytest.mark.parametrize("noise_mode", ["const", "none"])
@pytest.mark.parametrize("resolution", [8, 16, 32])
def test_generator_alpha0_is_upsampled_previous_stage(resolution: int, noise_mode: str) -> None:
    g = make_g(32)
    randomize_noise_strengths(g)
    ws = g.map(torch.randn(3, 16))
    with torch.no_grad():
        faded = g.synthesis(ws, resolution=resolution, alpha=0.0, noise_mode=noise_mode)
        previous = g.synthesis(ws, resolution=resolution // 2, alpha=1.0, noise_mode=noise_mode)
    assert torch.equal(faded, upsample2d(previous))


@pytest.mark.parametrize("resolution", [8, 16, 32])
def test_generator_alpha1_is_new_torgb_only(resolution: int) -> None:
    g = make_g(32)
    ws = g.map(torch.randn(3, 16))
    features = {}
    hook = g.synthesis.blocks[str(resolution)].register_forward_hook(
        lambda _m, _i, out: features.__setitem__("x", out)
    )
    with torch.no_grad():
        out = g.synthesis(ws, resolution=resolution, alpha=1.0, noise_mode="const")
        hook.remove()
        expected = g.synthesis.to_rgb[str(resolution)](features["x"])
        assert torch.equal(out, expected)
        # Poison the previous toRGB: alpha=1 must not touch it at all.
        g.synthesis.to_rgb[str(resolution // 2)].weight.fill_(float("nan"))
        again = g.synthesis(ws, resolution=resolution, alpha=1.0, noise_mode="const")
    assert torch.equal(out, again)
    with torch.no_grad():
        mixed = g.synthesis(ws, resolution=resolution, alpha=0.5, noise_mode="const")
    assert torch.isnan(mixed).all()  # ...while alpha < 1 does use it


@pytest.mark.parametrize("resolution", [8, 16, 32])
def test_discriminator_alpha0_is_previous_stage_on_downsampled(resolution: int) -> None:
    d = make_d(32)
    img = torch.randn(4, 3, resolution, resolution)
    with torch.no_grad():
        faded = d(img, resolution=resolution, alpha=0.0)
        previous = d(downsample2d(img), resolution=resolution // 2, alpha=1.0)
    assert torch.equal(faded, previous)


@pytest.mark.parametrize("resolution", [8, 16, 32])
def test_discriminator_alpha1_ignores_previous_fromrgb(resolution: int) -> None:
    d = make_d(32)
    img = torch.randn(4, 3, resolution, resolution)
    with torch.no_grad():
        out = d(img, resolution=resolution, alpha=1.0)
        d.from_rgb[str(resolution // 2)].conv.weight.fill_(float("nan"))
        again = d(img, resolution=resolution, alpha=1.0)
        mixed = d(img, resolution=resolution, alpha=0.5)
    assert torch.isfinite(out).all()
    assert torch.equal(out, again)
    assert torch.isnan(mixed).all()


def test_resampling_helpers() -> None:
    x = torch.randn(2, 3, 4, 4)
    up = upsample2d(x)
    assert up.shape == (2, 3, 8, 8)
    assert torch.equal(up[:, :, ::2, ::2], x) and torch.equal(up[:, :, 1::2, 1::2], x)
    assert torch.equal(downsample2d(up), x)
    blur = Blur()
    expected = torch.tensor([[1.0, 2.0, 1.0], [2.0, 4.0, 2.0], [1.0, 2.0, 1.0]]) / 16
    assert torch.equal(blur.kernel[0, 0], expected)
    const = torch.full((1, 2, 6, 6), 3.0)
    assert torch.allclose(blur(const)[:, :, 1:-1, 1:-1], const[:, :, 1:-1, 1:-1])
    assert "kernel" not in blur.state_dict()  # a constant, not checkpointed


# ----------------------------------------------------------------------------------------------
# Truncation, w_avg and mixing.


def test_w_avg_ema_update() -> None:
    g = make_g(16)
    z = torch.randn(8, 16)
    assert torch.equal(g.w_avg, torch.zeros(16))
    g.map(z)
    assert torch.equal(g.w_avg, torch.zeros(16))  # no update unless asked
    old = torch.randn(16)
    g.w_avg.copy_(old)
    ws = g.map(z, update_w_avg=True)
    expected = torch.lerp(g.mapping(z).mean(0), old, 0.995)
    assert torch.allclose(g.w_avg, expected, atol=1e-6)
    assert ws.requires_grad and not g.w_avg.requires_grad


def test_truncation_psi0_gives_identical_images() -> None:
    g = make_g(16)
    g.map(torch.randn(64, 16), update_w_avg=True)
    assert g.w_avg.abs().sum() > 0
    z = torch.randn(3, 16)
    with torch.no_grad():
        img = g(z, truncation_psi=0.0, noise_mode="const")
        ws = g.map(z, truncation_psi=0.0)
    assert torch.equal(ws, g.w_avg.expand_as(ws))
    assert torch.equal(img[0], img[1]) and torch.equal(img[0], img[2])


def test_truncation_psi1_is_bit_exact() -> None:
    g = make_g(16)
    g.w_avg.copy_(torch.randn(16))
    z = torch.randn(4, 16)
    ws = g.mapping(z)[:, None].repeat(1, g.num_ws, 1)
    assert torch.equal(g.map(z), ws)
    assert torch.equal(g.map(z, truncation_psi=1.0, truncation_cutoff=2), ws)
    assert torch.equal(g.map(z, truncation_psi=[1.0] * g.num_ws), ws)
    assert torch.equal(g.map(z, truncation_psi=torch.ones(g.num_ws)), ws)


def test_truncation_cutoff_and_per_layer_psi() -> None:
    g = make_g(16)  # num_ws = 6
    g.w_avg.copy_(torch.randn(16))
    z = torch.randn(4, 16)
    ws = g.map(z)
    cut = g.map(z, truncation_psi=0.5, truncation_cutoff=4)
    assert torch.equal(cut[:, 4:], ws[:, 4:])
    assert torch.allclose(cut[:, :4], g.w_avg + 0.5 * (ws[:, :4] - g.w_avg), atol=1e-6)
    assert not torch.allclose(cut[:, :4], ws[:, :4])
    psi = [0.0, 0.2, 0.4, 0.6, 1.0, 0.7]
    per_layer = g.map(z, truncation_psi=psi)
    for i, p in enumerate(psi):
        expected = ws[:, i] if p == 1.0 else g.w_avg + p * (ws[:, i] - g.w_avg)
        assert torch.allclose(per_layer[:, i], expected, atol=1e-6)
    assert torch.equal(per_layer[:, 4], ws[:, 4])
    with_cutoff = g.map(z, truncation_psi=psi, truncation_cutoff=2)
    assert torch.equal(with_cutoff[:, 2:], ws[:, 2:])
    assert torch.equal(with_cutoff[:, :2], per_layer[:, :2])


def test_mix_styles_int_and_per_sample() -> None:
    ws1, ws2 = torch.randn(3, 6, 4), torch.randn(3, 6, 4)
    mixed = mix_styles(ws1, ws2, 2)
    assert torch.equal(mixed[:, :2], ws1[:, :2]) and torch.equal(mixed[:, 2:], ws2[:, 2:])
    assert torch.equal(mix_styles(ws1, ws2, 6), ws1)
    assert torch.equal(mix_styles(ws1, ws2, 0), ws2)
    crossover = torch.tensor([1, 3, 6])
    mixed = mix_styles(ws1, ws2, crossover)
    for n, c in enumerate(crossover.tolist()):
        assert torch.equal(mixed[n, :c], ws1[n, :c]) and torch.equal(mixed[n, c:], ws2[n, c:])
    with pytest.raises(ValueError, match="crossover tensor must have shape"):
        mix_styles(ws1, ws2, torch.tensor([1, 2]))


def test_mixing_styles_seen_by_adain_layers() -> None:
    g = make_g(16)
    z1, z2 = torch.randn(2, 16), torch.randn(2, 16)
    ws1, ws2 = g.map(z1), g.map(z2)
    crossover = 3
    received: list[torch.Tensor] = []
    adains = g.synthesis.adains()
    assert len(adains) == g.num_ws
    hooks = [
        a.affine.register_forward_hook(lambda _m, i, _o: received.append(i[0])) for a in adains
    ]
    with torch.no_grad():
        g.synthesis(mix_styles(ws1, ws2, crossover), noise_mode="const")
    for h in hooks:
        h.remove()
    assert len(received) == g.num_ws
    for i, (adain, w_seen) in enumerate(zip(adains, received, strict=True)):
        source = ws1 if i < crossover else ws2
        assert torch.equal(w_seen, source[:, i]), f"AdaIN {i} got the wrong w"
        with torch.no_grad():
            assert torch.equal(adain.last_style, adain.affine(source[:, i]))
            other = ws2 if i < crossover else ws1
            assert not torch.allclose(adain.last_style, adain.affine(other[:, i]))


# ----------------------------------------------------------------------------------------------
# Equalized learning rate and initialisation.


@pytest.mark.parametrize("lr_mul", [1.0, 0.01])
@pytest.mark.parametrize("gain", [1.0, math.sqrt(2)])
def test_equalized_layers_runtime_scale(lr_mul: float, gain: float) -> None:
    torch.manual_seed(0)
    linear = EqualizedLinear(512, 256, lr_mul=lr_mul, gain=gain, bias_init=0.3)
    assert linear.weight_gain == pytest.approx(gain / math.sqrt(512) * lr_mul)
    conv = EqualizedConv2d(128, 64, 3, lr_mul=lr_mul, gain=gain, bias_init=0.3)
    assert conv.weight_gain == pytest.approx(gain / math.sqrt(128 * 9) * lr_mul)
    for layer, fan_in in [(linear, 512), (conv, 128 * 9)]:
        assert layer.weight.std().item() == pytest.approx(1.0 / lr_mul, rel=0.03)
        assert layer.effective_weight().std().item() == pytest.approx(
            gain / math.sqrt(fan_in), rel=0.03
        )
        assert torch.allclose(layer.bias * lr_mul, torch.full_like(layer.bias, 0.3))
    # The effective bias is bias_init: a zero input yields exactly it.
    assert torch.allclose(linear(torch.zeros(2, 512)), torch.full((2, 256), 0.3))
    assert torch.allclose(conv(torch.zeros(1, 128, 4, 4)), torch.full((1, 64, 4, 4), 0.3))


def test_equalized_layers_match_plain_layers() -> None:
    torch.manual_seed(0)
    linear = EqualizedLinear(8, 4, lr_mul=0.1, gain=2.0, bias_init=0.5)
    x = torch.randn(3, 8)
    expected = x @ (linear.weight * 2.0 / math.sqrt(8) * 0.1).T + linear.bias * 0.1
    assert torch.allclose(linear(x), expected, atol=1e-6)
    conv = EqualizedConv2d(4, 5, 3, gain=1.0)
    y = torch.randn(2, 4, 6, 6)
    ref = torch.nn.functional.conv2d(y, conv.weight / 6.0, conv.bias, padding=1)
    assert torch.allclose(conv(y), ref, atol=1e-5)


def test_mapping_network_lr_mul_and_gain() -> None:
    mapping = MappingNetwork(z_dim=32, w_dim=24, num_layers=8)
    assert len(mapping.layers) == 8
    for i, layer in enumerate(mapping.layers):
        fan_in = 32 if i == 0 else 24
        assert layer.lr_mul == 0.01
        assert layer.weight_gain == pytest.approx(math.sqrt(2) / math.sqrt(fan_in) * 0.01)
    g = make_g(16, mapping_layers=3)
    assert [layer.lr_mul for layer in g.mapping.layers] == [0.01] * 3
    # PixelNorm on z: scaling z does not change w.
    z = torch.randn(4, 32)
    assert torch.allclose(mapping(z), mapping(5.0 * z), atol=1e-5)


def test_generator_init_matches_official() -> None:
    g = make_g(16)
    synthesis = g.synthesis
    assert torch.equal(synthesis.blocks["4"].const, torch.ones_like(synthesis.blocks["4"].const))
    for adain in synthesis.adains():
        C = adain.channels
        assert adain.affine.weight_gain == pytest.approx(1.0 / math.sqrt(16))
        assert torch.equal(adain.affine.bias[:C], torch.ones(C))  # scale starts at 1
        assert torch.equal(adain.affine.bias[C:], torch.zeros(C))  # bias starts at 0
    for r in g.resolutions:
        # toRGB: 1×1 conv from 16 channels, gain 1.
        assert synthesis.to_rgb[str(r)].weight_gain == pytest.approx(1.0 / math.sqrt(16))
    noises = [m for m in g.modules() if isinstance(m, NoiseInjection)]
    assert len(noises) == g.num_ws
    assert all(torch.equal(m.weight, torch.zeros_like(m.weight)) for m in noises)


def test_adain_normalises_then_applies_style() -> None:
    adain = AdaIN(channels=3, w_dim=5)
    x = torch.randn(2, 3, 8, 8) * 4 + 2
    w = torch.randn(2, 5)
    out = adain(x, w)
    style = adain.affine(w)
    norm = (x - x.mean((2, 3), keepdim=True)) / x.std((2, 3), unbiased=False, keepdim=True)
    expected = norm * style[:, :3, None, None] + style[:, 3:, None, None]
    assert torch.allclose(out, expected, atol=1e-4)
    assert torch.equal(adain.last_style, style.detach())


@pytest.mark.parametrize(("batch", "group"), [(8, 4), (6, 3), (5, 1), (2, 2)])
@pytest.mark.parametrize("num_channels", [1, 2])
def test_minibatch_stddev_official_formula(batch: int, group: int, num_channels: int) -> None:
    layer = MinibatchStdDev(group_size=4, num_channels=num_channels)
    x = torch.randn(batch, 4, 3, 3)
    out = layer(x)
    assert out.shape == (batch, 4 + num_channels, 3, 3)
    assert torch.equal(out[:, :4], x)
    M = batch // group
    c = 4 // num_channels
    for n in range(batch):
        members = x[n % M :: M]  # official grouping: sample n is in group n % M
        assert members.shape[0] == group
        for k in range(num_channels):
            feats = members[:, k * c : (k + 1) * c]
            std = (feats.var(0, unbiased=False) + 1e-8).sqrt().mean()
            assert torch.allclose(out[n, 4 + k], std.expand(3, 3), atol=1e-6)


@pytest.mark.parametrize("batch", [8, 6, 3])
def test_minibatch_stddev_of_concatenated_minibatches_groups_within_each(batch: int) -> None:
    layer = MinibatchStdDev(group_size=4, num_channels=2)
    real, fake = torch.randn(batch, 4, 3, 3), torch.randn(batch, 4, 3, 3) * 3 + 1
    joint = layer(torch.cat([real, fake]), minibatches=2)
    torch.testing.assert_close(joint, torch.cat([layer(real), layer(fake)]), rtol=0, atol=1e-6)
    with pytest.raises(ValueError, match="equal minibatches"):
        layer(torch.randn(5, 4, 3, 3), minibatches=2)


# ----------------------------------------------------------------------------------------------
# Gradients.


def test_generator_gradients_reach_every_used_parameter() -> None:
    g = make_g(32)
    resolution = 16
    img = g(torch.randn(4, 16), resolution=resolution, alpha=0.5, update_w_avg=True)
    img.square().mean().backward()
    used_prefixes = ["mapping."] + [f"synthesis.blocks.{r}." for r in (4, 8, 16)]
    used_prefixes += [f"synthesis.to_rgb.{r}." for r in (8, 16)]
    for name, param in g.named_parameters():
        if any(name.startswith(p) for p in used_prefixes):
            assert param.grad is not None, f"{name} got no gradient"
            assert torch.isfinite(param.grad).all(), f"{name} has a non-finite gradient"
            if name.endswith("noise.weight"):
                assert param.grad.abs().sum() > 0, f"{name}: zero-initialised, must still learn"
        else:
            assert param.grad is None, f"{name} is not used at {resolution} but got a gradient"


def test_discriminator_gradients_reach_every_used_parameter() -> None:
    d = make_d(32)
    resolution = 16
    img = torch.randn(4, 3, resolution, resolution, requires_grad=True)
    d(img, resolution=resolution, alpha=0.5).sum().backward()
    used_prefixes = [f"blocks.{r}." for r in (4, 8, 16)] + [f"from_rgb.{r}." for r in (8, 16)]
    for name, param in d.named_parameters():
        if any(name.startswith(p) for p in used_prefixes):
            assert param.grad is not None, f"{name} got no gradient"
            assert torch.isfinite(param.grad).all(), f"{name} has a non-finite gradient"
        else:
            assert param.grad is None, f"{name} is not used at {resolution} but got a gradient"
    assert img.grad is not None and torch.isfinite(img.grad).all()  # needed by WGAN-GP / R1


def test_bf16_autocast_forward_and_backward() -> None:
    g, d = make_g(16), make_d(16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        img = g(torch.randn(4, 16), resolution=16, alpha=0.5, update_w_avg=True)
        logits = d(img, resolution=16, alpha=0.5)
    assert img.shape == (4, 3, 16, 16) and logits.shape == (4,)
    assert torch.isfinite(img.float()).all() and torch.isfinite(logits.float()).all()
    logits.float().mean().backward()
    assert all(torch.isfinite(p.grad).all() for p in g.parameters() if p.grad is not None)
    assert g.w_avg.dtype == torch.float32


# ----------------------------------------------------------------------------------------------
# Faithfulness: paper-size parameter counts (construction only).


def test_paper_parameter_counts() -> None:
    g = Generator(resolution=1024)
    num_g = sum(p.numel() for p in g.parameters())
    # StyleGAN paper: 26.2M for the style-based generator (mapping 2.1M + synthesis 24.1M),
    # counting per-layer noise strengths, the style affines (w_dim -> 2C) and every toRGB.
    assert abs(num_g - 26.2e6) <= 0.1e6, num_g
    assert sum(p.numel() for p in g.mapping.parameters()) == 8 * (512 * 512 + 512)
    assert g.num_ws == 18
    d = Discriminator(resolution=1024)
    num_d = sum(p.numel() for p in d.parameters())
    assert abs(num_d - 23.1e6) <= 0.1e6, num_d  # the official D_basic at 1024


# ----------------------------------------------------------------------------------------------
# Config round trip.


@pytest.mark.parametrize("channels", [None, {4: 8, 8: 6, 16: 4}])
def test_config_round_trip(channels) -> None:
    g = make_g(16, channels=channels, img_channels=1, w_avg_beta=0.99)
    g.w_avg.copy_(torch.randn(16))
    config = g.config
    assert config["resolution"] == 16 and config["img_channels"] == 1
    assert config["channels"] == channels
    via_json = json.loads(json.dumps(config))  # serialisable; str keys come back
    for cfg in (config, via_json):
        rebuilt = Generator(**cfg)
        rebuilt.load_state_dict(g.state_dict())  # strict: identical keys and shapes
        assert rebuilt.config == config
        z = torch.randn(2, 16)
        with torch.no_grad():
            a = g(z, noise_mode="const", truncation_psi=0.7)
            b = rebuilt(z, noise_mode="const", truncation_psi=0.7)
        assert torch.equal(a, b)
    config["z_dim"] = 99  # a copy: does not change the generator
    assert g.config["z_dim"] == 16


def test_discriminator_config_round_trip() -> None:
    d = make_d(16, channels={4: 8, 8: 6, 16: 4}, mbstd_group_size=2)
    config = json.loads(json.dumps(d.config))
    rebuilt = Discriminator(**config)
    rebuilt.load_state_dict(d.state_dict())
    img = torch.randn(4, 3, 16, 16)
    with torch.no_grad():
        assert torch.equal(d(img), rebuilt(img))
    dcgan = DCGANDiscriminator(resolution=32, base_channels=4)
    DCGANDiscriminator(**dcgan.config).load_state_dict(dcgan.state_dict())


def test_truncation_accepts_config_types() -> None:
    g = make_g(16)
    g.w_avg.copy_(torch.randn(16))
    z = torch.randn(2, 16)
    expected = g.map(z, truncation_psi=[0.5] * 6, truncation_cutoff=3)
    psi_tuple = g.map(z, truncation_psi=(0.5,) * 6, truncation_cutoff=torch.tensor(3).item())
    assert torch.equal(expected, psi_tuple)
    assert torch.equal(expected, g.map(z, truncation_psi=torch.tensor(0.5), truncation_cutoff=3))
    with pytest.raises(ValueError, match=r"truncation_cutoff must be an int or None, got 2\.5"):
        g.map(z, truncation_psi=0.5, truncation_cutoff=2.5)


def test_synthesis_network_standalone() -> None:
    synthesis = SynthesisNetwork(w_dim=8, resolution=8, **TINY)
    assert synthesis.num_ws == 4
    assert synthesis(torch.randn(2, 4, 8), resolution=8).shape == (2, 3, 8, 8)


# ----------------------------------------------------------------------------------------------
# Noise modes.


def test_noise_modes() -> None:
    g = make_g(16)
    randomize_noise_strengths(g)
    ws = g.map(torch.randn(2, 16))
    with torch.no_grad():
        const1 = g.synthesis(ws, noise_mode="const")
        const2 = g.synthesis(ws, noise_mode="const")
        rand1 = g.synthesis(ws, noise_mode="random")
        rand2 = g.synthesis(ws, noise_mode="random")
        none = g.synthesis(ws, noise_mode="none")
        silent = copy.deepcopy(g)
        for module in silent.modules():
            if isinstance(module, NoiseInjection):
                module.weight.zero_()
        no_strength = silent.synthesis(ws, noise_mode="random")
    assert torch.equal(const1, const2)
    assert not torch.allclose(rand1, rand2)
    assert not torch.allclose(const1, rand1)
    assert torch.equal(none, no_strength)
    assert not torch.allclose(none, const1)


def test_const_noise_is_fixed_per_layer_and_process() -> None:
    a, b = make_g(16), make_g(16)
    torch.manual_seed(123)  # the global RNG state must not matter
    c = Generator(resolution=16, **TINY_G)
    buffers = [n for n in a.state_dict() if n.endswith("noise_const")]
    assert len(buffers) == a.num_ws
    for name in buffers:
        assert torch.equal(a.state_dict()[name], b.state_dict()[name])
        assert torch.equal(a.state_dict()[name], c.state_dict()[name])
    first, second = (a.state_dict()[n] for n in buffers[2:4])  # two layers at 8×8
    assert not torch.equal(first, second)


# ----------------------------------------------------------------------------------------------
# Seed DCGAN discriminator.


def test_dcgan_discriminator() -> None:
    assert DCGANDiscriminator.supports_gradient_penalty is False
    assert Discriminator.supports_gradient_penalty is True
    torch.manual_seed(0)
    d = DCGANDiscriminator(base_channels=8)
    convs = [m for m in d.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [8, 16, 32, 64, 1]
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in d.modules()) == 3
    img = torch.randn(4, 3, 64, 64)
    d.eval()
    with torch.no_grad():
        out = d(img)
        assert out.shape == (4,)
        assert torch.equal(out, d(img, resolution=64, alpha=0.3))  # alpha accepted and ignored
    with pytest.raises(ValueError, match="not progressive"):
        d(img, resolution=32)
    small = DCGANDiscriminator(resolution=32, base_channels=4)  # log2(32) - 2 = 3 stride-2 convs
    assert small(torch.randn(2, 3, 32, 32)).shape == (2,)
    full = DCGANDiscriminator()  # the seed: 64 -> 128 -> 256 -> 512 -> logit
    widths = [c.out_channels for c in full.modules() if isinstance(c, torch.nn.Conv2d)]
    assert widths == [64, 128, 256, 512, 1]


@pytest.mark.parametrize("field", ["z_dim", "w_dim", "mapping_layers", "channel_base"])
def test_non_positive_sizes_are_refused_with_their_name(field):
    from stylegan.errors import ConfigError

    with pytest.raises(ConfigError, match=f"{field} must be a positive integer"):
        Generator(resolution=8, **{field: 0})
