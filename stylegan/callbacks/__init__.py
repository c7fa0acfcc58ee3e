"""Lightning callbacks: each owns one concern of a training run.

- ``progressive``: the progressive-growing schedule (resolution, alpha, batch size, lr).
- ``checkpoint``: atomic checkpoint IO and periodic/last checkpoints by kimg.
- ``resume``: training's RNG streams and the loader position, for a bit-identical resume.
- ``divergence``: the NaN/Inf guard (``training.on_nonfinite``); no non-finite checkpoint.
- ``preemption``: SIGTERM / SIGUSR1 (clusters): ``last.ckpt`` at a step boundary, exit 143.
- ``samples``: fixed-z sample grids and real-image grids.
- ``export``: ``generator.pt`` at the end of training.
- ``progress_bar``: a tqdm bar over the run's kimg.
- ``fid``: FID of the EMA generator during training, ``best.ckpt``.
- ``traffic``: bytes all-reduced per D and G step under DDP (a diagnostic, in no config).
"""

from stylegan.callbacks.checkpoint import AtomicCheckpointIO, PeriodicCheckpoint
from stylegan.callbacks.divergence import DivergenceError, DivergenceGuard
from stylegan.callbacks.export import ExportGenerator
from stylegan.callbacks.fid import FIDCallback
from stylegan.callbacks.preemption import Preemption
from stylegan.callbacks.progress_bar import KimgProgressBar
from stylegan.callbacks.progressive import ProgressiveGrowing
from stylegan.callbacks.resume import ExactResume
from stylegan.callbacks.samples import SampleGrid

__all__ = [
    "AtomicCheckpointIO",
    "DivergenceError",
    "DivergenceGuard",
    "ExactResume",
    "ExportGenerator",
    "FIDCallback",
    "KimgProgressBar",
    "PeriodicCheckpoint",
    "Preemption",
    "ProgressiveGrowing",
    "SampleGrid",
]
