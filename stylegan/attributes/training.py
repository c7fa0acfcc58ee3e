"""Training the attribute classifier, and its held-out report.

A plain supervised loop (no GAN machinery): binary cross-entropy on the 40 labels, AdamW, a
linear warm-up then a cosine decay of the learning rate, random horizontal flips, bf16 autocast
where the CPU computes bf16 natively (``stylegan.precision``). The schedule runs over
``epochs`` passes *or* ``max_time_s`` seconds, whichever ends first: its position is the larger
of the two fractions spent, so a slower machine still anneals to the end instead of being cut off
at a high learning rate. One progress bar shows epoch, loss and images/s.

:func:`holdout_report` gives, per attribute, the accuracy on held-out images, the majority-class
baseline (always answering the training set's more frequent class) and the balanced accuracy
(mean of the true-positive and true-negative rates).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from tqdm import tqdm

from stylegan.attributes.classifier import AttributeClassifier
from stylegan.errors import ConfigError
from stylegan.precision import cpu_has_native_bf16

WARMUP_SHARE = 0.05  # share of the schedule spent warming the learning rate up from 0


@dataclass
class TrainOptions:
    """``train:`` of ``conf/attributes.yaml``."""

    epochs: int = 30  # passes over the training images (upper bound with max_time_s)
    batch_size: int = 64
    lr: float = 2e-3  # AdamW peak learning rate
    weight_decay: float = 0.05
    max_time_s: float | None = None  # wall-clock budget of the loop; None = epochs only
    hflip: bool = True  # mirror half of every batch at random
    bf16: str = "auto"  # auto (bf16 autocast where native: CPU bf16 or CUDA) | true | false
    eval_batch_size: int = 256

    def check(self) -> TrainOptions:
        if self.epochs < 1 or self.batch_size < 1 or self.eval_batch_size < 1:
            raise ConfigError(
                "train.epochs, train.batch_size and train.eval_batch_size must be >= 1"
            )
        if self.lr <= 0 or self.weight_decay < 0:
            raise ConfigError("train.lr must be > 0 and train.weight_decay >= 0")
        if self.max_time_s is not None and self.max_time_s <= 0:
            raise ConfigError(f"train.max_time_s must be > 0 or null, got {self.max_time_s}")
        if str(self.bf16).lower() not in ("auto", "true", "false"):
            raise ConfigError(f"train.bf16 must be auto, true or false, got {self.bf16!r}")
        return self


def use_bf16(choice: str, device: torch.device) -> bool:
    choice = str(choice).lower()
    if choice != "auto":
        return choice == "true"
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return cpu_has_native_bf16()


def lr_at(progress: float, peak: float) -> float:
    """Linear warm-up over :data:`WARMUP_SHARE` of the schedule, then cosine decay to 0."""
    if progress < WARMUP_SHARE:
        return peak * progress / WARMUP_SHARE
    t = min(1.0, (progress - WARMUP_SHARE) / (1 - WARMUP_SHARE))
    return peak * 0.5 * (1 + math.cos(math.pi * t))


def to_float(images: Tensor) -> Tensor:
    """uint8 images -> float in [-1, 1] (the generator's range)."""
    return images.float() / 127.5 - 1.0


def train_classifier(
    images: Tensor,
    labels: Tensor,
    *,
    attributes: Sequence[str],
    opts: TrainOptions,
    seed: int = 0,
    device: torch.device | str = "cpu",
    progress: bool | None = None,
) -> tuple[AttributeClassifier, int]:
    """Train a classifier on uint8 ``images`` [N, 3, R, R] and 0/1 ``labels`` [N, A]; returns
    it (eval mode, on ``device``) and the number of images it saw."""
    device = torch.device(device)
    N, R = images.shape[0], images.shape[-1]
    if opts.batch_size > N:
        raise ConfigError(f"only {N} training images for train.batch_size={opts.batch_size}")
    torch.manual_seed(seed)
    model = AttributeClassifier(attributes=attributes, resolution=R).to(device)
    model = model.to(memory_format=torch.channels_last)
    decay = [p for n, p in model.named_parameters() if p.ndim > 1]
    no_decay = [p for n, p in model.named_parameters() if p.ndim <= 1]
    optimizer = torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": opts.weight_decay},
            {"params": no_decay, "weight_decay": 0},
        ],
        lr=opts.lr,
    )
    bf16 = use_bf16(opts.bf16, device)
    steps_per_epoch = N // opts.batch_size
    total_steps = opts.epochs * steps_per_epoch
    gen = torch.Generator().manual_seed(seed)
    labels = labels.float()
    start, step, seen = time.monotonic(), 0, 0
    bar = tqdm(total=total_steps, unit="step", desc="classifier", disable=progress is False)
    model.train()
    done = False
    for epoch in range(opts.epochs):
        order = torch.randperm(N, generator=gen)
        for b in range(steps_per_epoch):
            spent = step / total_steps
            if opts.max_time_s:
                spent = max(spent, (time.monotonic() - start) / opts.max_time_s)
            if spent >= 1:
                done = True
                break
            for group in optimizer.param_groups:
                group["lr"] = lr_at(spent, opts.lr)
            idx = order[b * opts.batch_size : (b + 1) * opts.batch_size]
            x = to_float(images[idx])
            if opts.hflip:
                flip = torch.rand(len(idx), generator=gen) < 0.5
                x = torch.where(flip[:, None, None, None], x.flip(-1), x)
            x = x.to(device).contiguous(memory_format=torch.channels_last)
            y = labels[idx].to(device)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                logits = model(x)
            loss = F.binary_cross_entropy_with_logits(logits.float(), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step, seen = step + 1, seen + len(idx)
            rate = seen / max(1e-9, time.monotonic() - start)
            bar.set_postfix_str(f"epoch {epoch + 1} loss {loss.item():.3f} {rate:.0f} img/s")
            bar.update(1)
        if done:
            break
    bar.close()
    return model.eval().requires_grad_(False), seen


@torch.no_grad()
def classify_uint8(
    classifier: AttributeClassifier,
    images: Tensor,
    *,
    batch_size: int = 256,
    device: torch.device | str = "cpu",
) -> Tensor:
    """Probabilities [N, A] (CPU float32) of uint8 images, in batches."""
    out = []
    for s in range(0, images.shape[0], batch_size):
        x = to_float(images[s : s + batch_size]).to(device)
        out.append(torch.sigmoid(classifier(x).float()).cpu())
    return torch.cat(out)


def holdout_report(probs: Tensor, labels: Tensor, train_labels: Tensor) -> dict[str, list[float]]:
    """Per attribute: ``accuracy`` (threshold 0.5), ``baseline`` (the training majority class
    answered for every image) and ``balanced`` accuracy ((TPR + TNR) / 2; a class absent from
    the held-out images counts the other rate alone)."""
    pred = (np.asarray(probs) >= 0.5).astype(np.uint8)
    y = np.asarray(labels).astype(np.uint8)
    majority = (np.asarray(train_labels).mean(axis=0) >= 0.5).astype(np.uint8)
    accuracy = (pred == y).mean(axis=0)
    baseline = (y == majority[None]).mean(axis=0)
    balanced = []
    for a in range(y.shape[1]):
        rates = [(pred[y[:, a] == c, a] == c).mean() for c in (0, 1) if (y[:, a] == c).any()]
        balanced.append(float(np.mean(rates)))
    return {
        "accuracy": [float(v) for v in accuracy],
        "baseline": [float(v) for v in baseline],
        "balanced": balanced,
        "count": int(y.shape[0]),
    }


def format_report(attributes: Sequence[str], report: dict) -> list[str]:
    """One line per attribute, then the means: what ``attributes.py`` prints."""
    width = max(len(a) for a in attributes)
    lines = [f"{'attribute':<{width}}  accuracy  majority  balanced"]
    for i, name in enumerate(attributes):
        acc, base, bal = (report[k][i] for k in ("accuracy", "baseline", "balanced"))
        lines.append(f"{name:<{width}}  {acc:8.3f}  {base:8.3f}  {bal:8.3f}")
    means = [float(np.mean(report[k])) for k in ("accuracy", "baseline", "balanced")]
    lines.append(
        f"{'mean':<{width}}  {means[0]:8.3f}  {means[1]:8.3f}  {means[2]:8.3f}"
        f"  ({report['count']} held-out images)"
    )
    return lines
