"""The folded TF-Inception executor: the same features and FID as the TorchScript it reads."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from stylegan.metrics import feature_statistics, frechet_distance, load_feature_network
from stylegan.metrics.inception import FoldedGraph, UnsupportedGraphError

CELEBA = Path(__file__).resolve().parents[2] / "shared" / "celeba" / "img_align_celeba"


class ConvBNReLU(nn.Module):
    """The shape of every conv in default_1.pt: conv(x, w.to(x.dtype)), inference BN, ReLU."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(cout)
        self.weight = nn.Parameter(torch.randn(cout, cin, 3, 3, generator=g) * 0.2)
        self.register_buffer("mean", torch.randn(cout, generator=g))
        self.register_buffer("var", torch.rand(cout, generator=g) + 0.5)
        self.gamma = nn.Parameter(torch.rand(cout, generator=g) + 0.5)
        self.beta = nn.Parameter(torch.randn(cout, generator=g))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.conv2d(x, self.weight.to(x.dtype), None, [1, 1], [1, 1])
        x = torch.batch_norm(x, None, self.beta, self.mean, self.var, False, 0.1, 0.001, False)
        return F.relu(x)


class ConvBNReLUWithGamma(ConvBNReLU):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.conv2d(x, self.weight.to(x.dtype), None, [1, 1], [1, 1])
        x = torch.batch_norm(
            x, self.gamma, self.beta, self.mean, self.var, False, 0.1, 0.001, False
        )
        return F.relu(x)


class Branches(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = ConvBNReLU(3, 8)
        self.b = ConvBNReLUWithGamma(8, 6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.a(x)
        pooled = F.avg_pool2d(y, 3, 1, 1, False, False)
        out = torch.cat([self.b(y), pooled, F.max_pool2d(y, 3, 1, 1)], 1)
        return out.mean(dim=(2, 3))


def test_folding_equals_conv_bn_relu_with_and_without_gamma():
    scripted = torch.jit.script(Branches().eval())
    x = torch.randn(4, 3, 9, 9)
    with torch.no_grad():
        expected = scripted(x)
        for channels_last in (True, False):
            got = FoldedGraph(scripted, channels_last=channels_last)(x)
            assert got.shape == expected.shape
            assert torch.allclose(got, expected, rtol=1e-5, atol=1e-5)


def test_unknown_graph_construct_is_refused_and_the_network_falls_back(caplog):
    class Loop(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            for _ in range(int(x.shape[0])):
                x = x + 1
            return x

    scripted = torch.jit.script(Loop().eval())
    try:
        FoldedGraph(scripted)
    except UnsupportedGraphError as exc:
        assert "prim::Loop" in str(exc)
    else:
        raise AssertionError("a loop must be refused")
    from stylegan.metrics.feature_networks import TFInceptionOffline

    with caplog.at_level(logging.WARNING):
        net = TFInceptionOffline(scripted)
    assert net.net is scripted and "unoptimized" in caplog.text


def _celeba(start: int, count: int) -> torch.Tensor:
    images = []
    for i in range(start, start + count):
        with Image.open(CELEBA / f"{i + 1:06d}.jpg") as image:
            images.append(np.asarray(image.convert("RGB").resize((32, 32))))
    return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous()


def test_folded_tf_inception_gives_the_torchscript_features_and_fid():
    fast = load_feature_network("tf-inception-offline")
    plain = load_feature_network("tf-inception-offline", fast=False)
    assert isinstance(fast.net, FoldedGraph) and not isinstance(plain.net, FoldedGraph)
    a, b = _celeba(0, 24), _celeba(100, 24)
    with torch.no_grad():
        fa, pa = fast(a), plain(a)
    relative = (fa - pa).norm(dim=1) / pa.norm(dim=1)
    assert relative.max() < 1e-4, relative.max()
    fid_fast = frechet_distance(feature_statistics([a], fast), feature_statistics([b], fast))
    fid_plain = frechet_distance(feature_statistics([a], plain), feature_statistics([b], plain))
    assert abs(fid_fast - fid_plain) < 0.5 and fid_plain > 1.0


def test_cpu_feature_pass_split_across_cores_equals_one_pass():
    net = load_feature_network("tf-inception-offline")
    images = _celeba(200, 6)
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with torch.no_grad():
            split = net(images)  # 2 groups of 3 images, one single-threaded worker each
        assert net._pool is not None and net._pool._max_workers == 2
        torch.set_num_threads(1)
        with torch.no_grad():
            whole = net(images)  # one pass on this thread
    finally:
        torch.set_num_threads(threads)
    assert split.shape == (6, 2048) and not split.requires_grad
    assert torch.allclose(split, whole, rtol=1e-5, atol=1e-5)
    assert torch.get_num_threads() == threads  # the workers' single thread stays theirs
