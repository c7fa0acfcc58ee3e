"""Improved precision and recall (Kynkäänniemi et al. 2019, *Improved Precision and Recall Metric
for Assessing Generative Models*) on the same 2048-d Inception features as FID.

Each set of feature vectors approximates its manifold by the union of balls around every vector
with the radius of its k-th nearest neighbour in the same set (k = 3 in the paper). Precision is
the fraction of generated vectors inside the real manifold (how realistic the samples are);
recall is the fraction of real vectors inside the generated manifold (how much of the data the
generator covers). Both are in [0, 1]; a ball includes its boundary.

The computation is torch-fidelity's (``torch_fidelity.metric_prc``, installed with
``torchmetrics[image]``), in its memory-saving form that never holds the full distance matrix;
``tests/test_precision_recall.py`` checks it against a brute-force transcription of the paper's
definition and against hand-computed values. Note that the paper and NVlabs' stylegan2-ada
compute it on VGG-16 features; here it shares the Inception features with FID and KID (no second
feature network), so compare values only within this codebase.
"""

from __future__ import annotations

from typing import NamedTuple

from torch import Tensor


class PrecisionRecall(NamedTuple):
    precision: float
    recall: float
    k: int


def precision_recall(
    real: Tensor,
    fake: Tensor,
    *,
    k: int = 3,  # the neighbour whose distance is a ball's radius (paper: 3)
    batch_size: int = 10_000,  # rows of the distance matrix computed at once (memory)
) -> PrecisionRecall:
    """Precision and recall of generated features ``fake [m, D]`` against ``real [n, D]``."""
    if real.ndim != 2 or fake.ndim != 2 or real.shape[1] != fake.shape[1]:
        raise ValueError(
            f"need real [n, D] and fake [m, D] features, got {tuple(real.shape)} and "
            f"{tuple(fake.shape)}"
        )
    if k < 1 or min(real.shape[0], fake.shape[0]) <= k:
        raise ValueError(
            f"precision/recall with k={k} needs more than k images on each side, got "
            f"{real.shape[0]} real and {fake.shape[0]} generated"
        )
    from torch_fidelity.metric_prc import calculate_precision_recall_part

    # torch-fidelity's convention: features_1 is GENERATED, features_2 is REAL.
    precision, recall = calculate_precision_recall_part(
        fake.float().cpu(), real.float().cpu(), neighborhood=k, batch_size=batch_size
    )
    return PrecisionRecall(float(precision), float(recall), k)
