"""FID (and the other chosen metrics) during training: every ``every_kimg`` and at the end, on
the EMA generator (psi = 1).

Real statistics come from the data module's images at the current resolution (its held-out images
when ``data.holdout`` is set) and are cached on
disk per (dataset fingerprint, crop, resolution, count, feature network) by
:mod:`stylegan.metrics.fid`, so each evaluation only pays for the generated side. Logs
``metrics/fid`` and ``metrics/fid_best`` (the FID curve) and writes ``best.ckpt`` whenever the FID
improves. Without a usable feature network (offline, no local weights) it says so once and turns
itself off instead of failing the run.

``metrics`` (the ``metrics`` config group, :class:`stylegan.metrics.suite.MetricChoice`) adds KID
(``metrics/kid``, ``metrics/kid_std``), precision and recall (``metrics/precision``,
``metrics/recall``) from the same generated features, and PPL (``metrics/ppl_w_end``, ...). PPL
without local LPIPS weights is turned off the same way, with one warning. Linear separability
(``metrics/separability_z``, ``metrics/separability_w``) is measured only while the generator
is at the attribute classifier's resolution and fully faded in; at any other evaluation it is
skipped (one warning per run), since the classifier only reads images of its own size.
"""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.utilities import rank_zero_warn
from tqdm.auto import tqdm

from stylegan.metrics import (
    FeatureNetworkUnavailable,
    feature_batch_size,
    load_feature_network,
)
from stylegan.metrics.ppl import PerceptualNetworkUnavailable, load_lpips
from stylegan.metrics.suite import (
    MetricChoice,
    evaluate_generator,
    ppl_metrics,
    separability_classifier,
    separability_metrics,
)


class CountedReals:
    """A data module's real images, counted on the FID progress line as they are read (only
    when the real statistics are not cached yet)."""

    def __init__(self, datamodule: Any, progress: tqdm) -> None:
        self.datamodule = datamodule
        self.progress = progress
        self.fingerprint = datamodule.fingerprint

    def real_batches(self, resolution: int, count: int, batch_size: int) -> Iterator[torch.Tensor]:
        self.progress.total += count
        self.progress.set_postfix_str("real statistics", refresh=False)
        for batch in self.datamodule.real_batches(resolution, count, batch_size):
            self.progress.update(len(batch))  # rank 0 computes them alone
            yield batch
        self.progress.set_postfix_str("generated", refresh=False)


class FIDCallback(L.Callback):
    """Evaluates FID of the EMA generator during training; tracks the best and saves best.ckpt."""

    def __init__(
        self,
        *,
        every_kimg: float = 0.0,  # thousands of images between evaluations; 0 = off
        num_images: int = 10_000,  # generated images per evaluation (paper: 50k)
        num_real: int | None = None,  # real images for the statistics; None = num_images
        feature_network: str = "tf-inception-offline",  # | torchmetrics-inception | tiny (tests)
        weights_path: str | None = None,  # local weights for torchmetrics-inception
        batch_size: int | None = None,  # images per feature pass; None = fastest for the device
        cache_dir: str = ".cache/fid",  # real-statistics cache
        best_ckpt_path: str | None = None,  # written when the FID improves; None = don't
        at_train_end: bool = True,  # also evaluate once when training ends
        metrics: Any = None,  # the `metrics` group: KID, P&R, PPL, separability; None = FID alone
    ) -> None:
        self.every_images = round(every_kimg * 1000)
        self.num_images = num_images
        self.num_real = num_real
        self.feature_network = feature_network
        self.weights_path = weights_path
        self.batch_size = batch_size
        feature_batch_size(batch_size, "cpu")  # a bad value fails at construction, not mid-run
        self.cache_dir = Path(cache_dir)
        self.best_ckpt_path = Path(best_ckpt_path) if best_ckpt_path else None
        self.at_train_end = at_train_end
        self.enabled = self.every_images > 0 or at_train_end
        self.best = float("inf")
        self.history: list[tuple[int, float]] = []  # (images seen, fid)
        self.summary: str | None = None  # one line describing the latest evaluation
        self.choice = MetricChoice.from_config(metrics)
        self.last: dict[str, Any] = {}  # every metric of the latest evaluation
        self._net: torch.nn.Module | None = None
        self._lpips: torch.nn.Module | None = None
        # Loaded now: a wrong path fails when the run is built, not at its first evaluation.
        self._classifier = separability_classifier(self.choice) if self.enabled else None
        self._separability_warned = False

    # ------------------------------------------------------------------ lifecycle
    def on_fit_start(self, trainer: L.Trainer, pl_module: Any) -> None:
        if not self.enabled:
            return
        try:
            self._net = load_feature_network(
                self.feature_network, weights_path=self.weights_path, device=pl_module.device
            )
        except FeatureNetworkUnavailable as exc:
            self.enabled = False
            rank_zero_warn(f"FID is off for this run: {exc}")
            return
        if self.choice.ppl is not None:
            try:
                self._lpips = load_lpips(
                    self.choice.ppl.get("weights_path"), device=pl_module.device
                )
            except PerceptualNetworkUnavailable as exc:
                self.choice = self.choice.without_ppl()
                rank_zero_warn(f"PPL is off for this run: {exc}")
        if self._classifier is not None:
            self._classifier.to(pl_module.device)

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: Any, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if self.enabled and pl_module.step_crossed(self.every_images):
            self.evaluate(trainer, pl_module)

    def on_train_end(self, trainer: L.Trainer, pl_module: Any) -> None:
        evaluated_now = self.history and self.history[-1][0] == pl_module.images_seen
        if self.enabled and self.at_train_end and not evaluated_now:
            self.evaluate(trainer, pl_module, log=False)
        if self.history:
            trainer.callback_metrics["metrics/fid_best"] = torch.tensor(self.best)
            trainer.callback_metrics["metrics/fid"] = torch.tensor(self.history[-1][1])

    # ------------------------------------------------------------------ evaluation
    @torch.no_grad()
    def evaluate(self, trainer: L.Trainer, pl_module: Any, *, log: bool = True) -> float:
        """FID at the module's current resolution/alpha; collective under DDP. With
        ``data.holdout`` the reference is the held-out images, which the run never trains on."""
        held_out = getattr(trainer.datamodule, "held_out", lambda: None)()
        datamodule = held_out or trainer.datamodule
        resolution, alpha = pl_module.resolution, pl_module.alpha
        device = pl_module.device
        batch_size = feature_batch_size(self.batch_size, device)
        G = pl_module.generator_ema
        # A per-rank, per-evaluation seed: ranks draw different images, runs are reproducible.
        seed = 1_000_003 * trainer.global_rank + len(self.history)
        gen = torch.Generator(device="cpu").manual_seed(seed)

        # Its own progress line (rank 0): minutes of feature passes would otherwise look hung.
        progress = tqdm(
            total=self.num_images,
            desc=f"FID at {pl_module.images_seen / 1000:.1f} kimg",
            unit="img",
            disable=not trainer.is_global_zero,
            leave=False,
            dynamic_ncols=True,
        )

        def generate(batch_size: int) -> torch.Tensor:
            z = torch.randn(batch_size, G.z_dim, generator=gen).to(device)
            images = G(z, resolution=resolution, alpha=alpha, noise_mode="random").float()
            progress.update(batch_size * trainer.world_size)
            return images

        result, _ = evaluate_generator(
            generate,
            CountedReals(datamodule, progress),
            resolution=resolution,
            choice=self.choice,
            num_images=self.num_images,
            num_real=self.num_real,
            feature_name=self.feature_network,
            feature_net=self._net,
            cache_dir=str(self.cache_dir),
            batch_size=batch_size,
            device=device,
        )
        progress.close()
        if self._lpips is not None:
            ppl = ppl_metrics(G, self._lpips, choice=self.choice, resolution=resolution,
                              alpha=alpha, seed=len(self.history), device=device)  # fmt: skip
            result.update(ppl)
        if self._classifier is not None:
            result.update(self._separability(G, resolution, alpha, trainer.is_global_zero))
        fid = result["fid"]
        self.last = result
        self.history.append((pl_module.images_seen, fid))
        self.summary = (
            f"FID {fid:.2f} at {pl_module.images_seen / 1000:.1f} kimg ({resolution}px): "
            f"{self.num_images} generated vs {int(result['num_real'])} "
            f"{'held-out' if held_out else 'training'} real images"
        )
        improved = fid < self.best
        self.best = min(self.best, fid)
        logged = {"metrics/fid": fid, "metrics/fid_best": self.best}
        for name in ("kid", "kid_std", "precision", "recall"):
            if name in result:
                logged[f"metrics/{name}"] = result[name]
        logged.update({f"metrics/{k}": v for k, v in result.items() if k.startswith("ppl_")})
        for name in ("separability_z", "separability_w"):
            if name in result:
                logged[f"metrics/{name}"] = result[name]
        if log:
            pl_module.log_dict(logged, on_step=True, on_epoch=False, rank_zero_only=True)
        else:
            for logger in trainer.loggers:
                logger.log_metrics(logged, step=trainer.global_step)
        if improved and self.best_ckpt_path is not None:
            trainer.save_checkpoint(self.best_ckpt_path, weights_only=False)
        return fid

    def _separability(self, G: Any, resolution: int, alpha: float, rank_zero: bool) -> dict:
        """Linear separability of ``G`` at ``resolution``, or {} (and one warning per run) when
        the classifier reads another size or the top layer is still fading in."""
        wanted = self._classifier.resolution
        if resolution != wanted or alpha < 1:
            if not self._separability_warned:
                self._separability_warned = True
                rank_zero_warn(
                    f"linear separability skipped at {resolution}px (alpha {alpha:.2f}): the "
                    f"classifier reads {wanted}px images; it is measured at the evaluations "
                    f"where the generator is at {wanted}px, fully faded in"
                )
            return {}
        progress = None if rank_zero else False  # one progress bar, rank 0's
        return separability_metrics(
            G, self._classifier, choice=self.choice, resolution=resolution, progress=progress
        )

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "history": list(self.history)}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.best = float(state_dict.get("best", float("inf")))
        self.history = [tuple(item) for item in state_dict.get("history", [])]
