"""The attribute classifier: torchvision's ResNet-18 (randomly initialised; no weights are ever
downloaded) with one logit per CelebA attribute, its ``classifier.pt`` format, and inference.

Inputs are images as the generator makes them: float in [-1, 1], ``[N, 3, R, R]``, cropped as
the training data (``stylegan.data.cache.Crop``) at one resolution ``R``. The file records the
attribute names, the resolution and the crop, so a classifier is only ever applied to images it
was trained for: :func:`load_classifier` with ``resolution=`` refuses another one in one line.

``classifier.pt``: ``{"format": "stylegan-attribute-classifier", "version": 1, "arch":
"resnet18", "attributes": [40 names], "resolution": R, "crop": [size, center_y],
"state_dict": ..., "holdout": {"accuracy", "baseline", "balanced": [40], "count": n} | None,
"images_seen": n}``: tensors, lists, strings and numbers only, read with
:func:`stylegan.checkpoints.safe_torch_load` (``weights_only`` and an empty allow-list).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import torch
import torchvision
from torch import Tensor, nn

from stylegan.checkpoints import safe_torch_load
from stylegan.errors import UserError

CLASSIFIER_FORMAT = "stylegan-attribute-classifier"
CLASSIFIER_VERSION = 1
ARCHITECTURES = ("resnet18",)


class AttributeClassifier(nn.Module):
    """ResNet-18 from torchvision with ``len(attributes)`` sigmoid logits."""

    def __init__(
        self,
        *,
        attributes: Sequence[str],  # one output logit per name, in this order
        resolution: int,  # input side in pixels (the images it was trained on)
        arch: str = "resnet18",  # torchvision architecture; randomly initialised
    ) -> None:
        super().__init__()
        if arch not in ARCHITECTURES:
            raise UserError(f"classifier arch must be one of {list(ARCHITECTURES)}, got {arch!r}")
        self.attributes = list(attributes)
        self.resolution = int(resolution)
        self.arch = arch
        self.net = torchvision.models.resnet18(weights=None, num_classes=len(self.attributes))

    def forward(self, images: Tensor) -> Tensor:
        # images [N, 3, R, R] float in [-1, 1] -> logits [N, num_attributes]
        if images.ndim != 4 or images.shape[-1] != self.resolution:
            raise ValueError(
                f"expected [N, 3, {self.resolution}, {self.resolution}] images, "
                f"got {list(images.shape)}"
            )
        return self.net(images)


def classifier_export(
    classifier: AttributeClassifier, *, crop: Sequence[float], **extra: Any
) -> dict[str, Any]:
    """The ``classifier.pt`` payload: plain state dict plus what rebuilds and applies it."""
    return {
        "format": CLASSIFIER_FORMAT,
        "version": CLASSIFIER_VERSION,
        "arch": classifier.arch,
        "attributes": list(classifier.attributes),
        "resolution": classifier.resolution,
        "crop": [float(c) for c in crop],
        "state_dict": {k: v.detach().cpu() for k, v in classifier.state_dict().items()},
        **extra,
    }


def load_classifier(
    path: str | os.PathLike,
    *,
    resolution: int | None = None,
    device: str | torch.device = "cpu",
) -> tuple[AttributeClassifier, dict[str, Any]]:
    """Rebuild a classifier from ``classifier.pt`` in eval mode; returns it and the payload's
    other keys (``crop``, ``holdout``, ...). ``resolution``: the images it will see; another
    training resolution is one line (exit 2 at the command line)."""
    path = Path(path)
    payload = safe_torch_load(path, what="attribute classifier")
    if not isinstance(payload, dict) or payload.get("format") != CLASSIFIER_FORMAT:
        raise UserError(
            f"{path} is not an attribute classifier (train one: python attributes.py data.root=...)"
        )
    version = payload.get("version")
    if not isinstance(version, int) or not 1 <= version <= CLASSIFIER_VERSION:
        raise UserError(
            f"{path}: classifier format version {version!r} is not one this stylegan reads "
            f"(1..{CLASSIFIER_VERSION}); upgrade stylegan to load it"
        )
    trained_at = int(payload["resolution"])
    if resolution is not None and trained_at != int(resolution):
        raise UserError(
            f"{path} classifies {trained_at}px images but the generator makes {resolution}px "
            f"ones; train a classifier for them: python attributes.py resolution={resolution}"
        )
    try:
        classifier = AttributeClassifier(
            attributes=payload["attributes"], resolution=trained_at, arch=payload["arch"]
        )
        classifier.load_state_dict(payload["state_dict"])
    except (KeyError, TypeError, RuntimeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(
            f"{path}: the classifier weights do not match its config ({first})"
        ) from None
    classifier.eval().requires_grad_(False).to(device)
    info = {k: v for k, v in payload.items() if k != "state_dict"}
    return classifier, info


@torch.no_grad()
def predict_probs(
    classifier: nn.Module, batches: Iterable[Tensor], *, device: str | torch.device = "cpu"
) -> Tensor:
    """Sigmoid probabilities [N, num_attributes] (float32, CPU) of image batches in [-1, 1]
    (uint8 batches are scaled as the data module does)."""
    out = []
    for images in batches:
        images = images.to(device)
        if images.dtype == torch.uint8:
            images = images.float() / 127.5 - 1.0
        out.append(torch.sigmoid(classifier(images).float()).cpu())
    return torch.cat(out) if out else torch.empty(0, len(getattr(classifier, "attributes", [])))
