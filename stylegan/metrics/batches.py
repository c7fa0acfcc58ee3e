"""The images a metric featurizes, as uint8 batches: real ones up to a count, and this rank's
share of generated ones, quantized exactly like the data (:func:`stylegan.imaging.to_uint8`).

Both loops every metric runs live here, so FID's statistics, the cached real features and the
gathered generated features see the same images in the same batches.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

import torch
from torch import Tensor

from stylegan.imaging import to_uint8
from stylegan.metrics.distributed import rank_share
from stylegan.metrics.feature_networks import check_uint8_batch


def limited(batches: Iterable[Tensor], limit: int | None = None) -> Iterator[Tensor]:
    """The uint8 ``[B, 3, H, W]`` batches of ``batches`` (checked), ``limit`` images in all at the
    most (None = every one); the last batch is cut to fit."""
    seen = 0
    for batch in batches:
        if limit is not None and seen >= limit:
            break
        if limit is not None:
            batch = batch[: limit - seen]
        check_uint8_batch(batch)
        yield batch
        seen += batch.shape[0]


def generated(
    generate_fn: Callable[[int], Tensor],
    *,
    num_images: int,
    batch_size: int,
    device: str | torch.device,
) -> Iterator[Tensor]:
    """This rank's share of ``num_images`` generated images, as uint8 batches of at most
    ``batch_size`` on ``device``.

    ``generate_fn(b)`` returns ``b`` float images in [-1, 1], ``[b, 3, R, R]`` (uint8 passes
    through); under DDP it must draw different latents on each rank. Run the loop under
    ``torch.no_grad``. ValueError (at the call) for fewer than 2 images."""
    if num_images < 2:
        raise ValueError(f"num_images must be >= 2, got {num_images}")
    return _generated(generate_fn, rank_share(num_images), batch_size, torch.device(device))


def _generated(
    generate_fn: Callable[[int], Tensor], local: int, batch_size: int, device: torch.device
) -> Iterator[Tensor]:
    done = 0
    while done < local:
        b = min(batch_size, local - done)
        images = generate_fn(b)
        if images.ndim != 4 or images.shape[0] != b or images.shape[1] != 3:
            raise ValueError(
                f"generate_fn({b}) must return [{b}, 3, R, R], got {tuple(images.shape)}"
            )
        yield to_uint8(images.to(device))
        done += b
