"""The StyleGAN LightningModule: manual alternating optimization of D and G.

Owns one training step (``n_critic`` discriminator updates, then one generator update), the loss
selection (WGAN-GP with drift, or non-saturating logistic with R1; either penalty may run lazily,
with StyleGAN2's Adam correction; whether a penalty is on, and D's total loss, are the pure
``stylegan.losses.discriminator_penalty`` and ``discriminator_loss``), the fade-in of reals,
style-mixing regularization, the generator EMA, the memory format (channels_last), and the count
of images seen, which is the progressive state's single source of truth (the
:class:`~stylegan.callbacks.ProgressiveGrowing` callback derives resolution, alpha, batch size and
learning rate from it). Uses ``toggle_optimizer`` and ``manual_backward`` so that Lightning's
precision plugins (bf16/fp16) apply; losses and penalties are computed in fp32 from fp32 logits.
Under DDP each step averages, over the ranks, only the gradients of the parameters it updates
(:mod:`stylegan.distributed`).
"""

import copy
import time
from typing import Any

import lightning as L
import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

from stylegan import losses
from stylegan.augment import DiscriminatorAugment, adapt_resumed_state
from stylegan.checkpoints import CHECKPOINT_FORMAT, check_checkpoint_format
from stylegan.distributed import average_gradients, world_size
from stylegan.errors import ConfigError
from stylegan.networks import Generator, mix_styles
from stylegan.networks.layers import fade_in_reals
from stylegan.schedule import ProgressState

LOSSES = ("wgan_gp", "bce")


def host_random(*, high: int | None = None) -> float | int:
    """From training's torch CPU stream: a float in [0, 1), or an int in [1, ``high``). A CPU
    tensor on every device, so reading it back never waits for a GPU."""
    if high is None:
        return float(torch.rand(()))
    return int(torch.randint(1, high, ()))


# torch.compile graphs per network per resolution. Synthesis: under no_grad in the D step, with
# grad in the G step. D: reals and fakes in one pass of 2N (D step), fakes that require grad
# (G step), and in an R1 step fakes alone (N, no grad; the reals' R1 pass runs eagerly). So 2, or
# 3 with lazy R1, which runs both kinds of D step.
SYNTHESIS_GRAPHS_PER_RESOLUTION = 2
DISCRIMINATOR_GRAPHS_PER_RESOLUTION = 3


def recompile_limit_name() -> str:
    """The name of dynamo's per-function recompile limit (older torch: ``cache_size_limit``)."""
    config = torch._dynamo.config
    return "recompile_limit" if hasattr(config, "recompile_limit") else "cache_size_limit"


def allow_graphs_for_every_resolution(final_resolution: int) -> None:
    """Raise dynamo's per-function recompile limit (8 by default) to the graphs a run up to
    ``final_resolution`` compiles, up to 3 per resolution from 4 px, so no resolution falls back
    to eager (an 8 -> 128 px run needs up to 15; 4 -> 1024 px, 27)."""
    config, name = torch._dynamo.config, recompile_limit_name()
    resolutions = max(1, int(final_resolution).bit_length() - 2)  # 4, 8, ..., final
    needed = DISCRIMINATOR_GRAPHS_PER_RESOLUTION * resolutions + 2  # + 2: a spare either way
    if getattr(config, name) < needed:
        setattr(config, name, needed)


class StyleGANModule(L.LightningModule):
    """Trains a :class:`Generator` against a discriminator; the EMA generator is the product."""

    def __init__(
        self,
        *,
        generator: Generator,  # trained G; an EMA copy is made from it
        discriminator: nn.Module,  # Discriminator or DCGANDiscriminator
        loss: str = "wgan_gp",  # "wgan_gp" or "bce" (non-saturating logistic)
        gp_weight: float = 10.0,  # WGAN-GP lambda
        drift_weight: float = 0.001,  # WGAN-GP epsilon-drift weight on E[D(real)^2]
        gp_interval: int = 1,  # wgan_gp only: penalty every N D steps (lazy), scaled by N
        r1_gamma: float = 10.0,  # bce only: R1 weight gamma; 0 = no R1
        r1_interval: int = 1,  # bce only: R1 every N D steps (lazy), scaled by N
        n_critic: int = 1,  # D updates per G update
        style_mixing_prob: float = 0.9,  # probability of a mixed sample; 0 = no mixing
        ema_half_life_kimg: float = 10.0,  # generator EMA half-life; 0 = EMA equals G
        ema_rampup: float | None = None,  # half-life <= this x images seen (ADA: 0.05); None = off
        adam_betas: tuple[float, float] = (0.0, 0.99),
        adam_eps: float = 1e-8,
        lr: float = 0.001,  # initial lr; the progressive callback sets it per resolution
        reset_optimizer_on_phase: bool = True,  # official StyleGAN: new Adam state per phase
        channels_last: bool = False,  # NHWC activations and weights (faster convs on CPU/GPU)
        augment: DiscriminatorAugment | None = None,  # ADA/DiffAugment of D's inputs; None = off
        compile: bool = False,  # torch.compile G's synthesis and D (not their penalty passes)
        joint_d_pass_max_batch: int = 16,  # reals + fakes in one D call up to this many; 0 = never
    ) -> None:
        super().__init__()
        if loss not in LOSSES:
            raise ConfigError(f"unknown loss {loss!r}; choose one of {', '.join(LOSSES)}")
        self.penalty = losses.discriminator_penalty(
            loss,
            gp_weight=gp_weight,
            gp_interval=gp_interval,
            r1_gamma=r1_gamma,
            r1_interval=r1_interval,
        )
        if self.penalty.name and not getattr(discriminator, "supports_gradient_penalty", True):
            raise ConfigError(
                f"{type(discriminator).__name__} uses BatchNorm, which breaks per-sample gradient "
                "penalties: use loss=bce (without R1) with it, or the StyleGAN discriminator"
            )
        if not 0.0 <= style_mixing_prob <= 1.0:
            raise ConfigError(f"style_mixing_prob must be in [0, 1], got {style_mixing_prob}")
        if n_critic < 1 or r1_interval < 1 or gp_interval < 1:
            raise ConfigError("n_critic, loss.gp_interval and loss.r1_interval must be >= 1")
        self.automatic_optimization = False
        self.generator = generator
        self.discriminator = discriminator
        # Reals and fakes in one D pass where D keeps them apart (see _discriminator_loss).
        self._joint_real_fake_pass = bool(getattr(discriminator, "supports_joint_pass", False))
        self.joint_d_pass_max_batch = int(joint_d_pass_max_batch)
        # Same train/eval mode as G (G has no mode-dependent layers); never optimized.
        self.generator_ema = copy.deepcopy(generator).requires_grad_(False)
        self.augment = augment
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        for network in (self.generator, self.discriminator, self.generator_ema):
            network.to(memory_format=self.memory_format)
        self.loss = loss
        self.gp_weight = gp_weight
        self.drift_weight = drift_weight
        self.gp_interval = gp_interval
        self.r1_gamma = r1_gamma
        self.r1_interval = r1_interval
        # Lazy regularization (StyleGAN2): D's Adam sees the penalty every N steps, so its lr and
        # betas are scaled by N / (N + 1) to keep the same effective step over N + 1 minibatches.
        self.d_adam_ratio = self.penalty.adam_ratio
        self.n_critic = n_critic
        self.style_mixing_prob = style_mixing_prob
        self.ema_half_life_kimg = ema_half_life_kimg
        self.ema_rampup = ema_rampup
        self.adam_betas = tuple(float(b) for b in adam_betas)  # torch refuses an int 0
        self.adam_eps = adam_eps
        self.lr = lr
        self.reset_optimizer_on_phase = reset_optimizer_on_phase
        # Progressive state; images_seen is authoritative and checkpointed.
        self.images_seen = 0
        self.images_before_step = 0  # images_seen before the latest step (for interval callbacks)
        self.resolution = generator.resolution
        self.alpha = 1.0
        self.phase_index = -1  # -1 = no state applied yet
        self._d_steps = 0
        # torch.compile: alpha goes in as a 0-d tensor, so a new alpha is new data, not a new
        # graph; the resolution is a Python int, so each resolution compiles once. The compiled
        # callables live in a dict, not as submodules, so checkpoints keep the plain keys.
        self.compile = compile
        self.register_buffer("alpha_tensor", torch.tensor(1.0), persistent=False)
        self._compiled: dict[str, Any] = {}
        self._last_log: tuple[float, int] | None = None  # (time, images_seen) at the last log

    # ------------------------------------------------------------------ progressive state
    def apply_progress(self, state: ProgressState) -> None:
        """Run at ``state``'s resolution/alpha/lr; new Adam state when the phase changes."""
        phase_changed = self.phase_index not in (-1, state.phase_index)
        self.resolution = state.resolution
        self.alpha = state.alpha
        self.alpha_tensor.fill_(state.alpha)
        self.phase_index = state.phase_index
        self.lr = state.lr
        if self._trainer is None:
            return
        for optimizer, ratio in zip(self.trainer.optimizers, (1.0, self.d_adam_ratio), strict=True):
            if phase_changed and self.reset_optimizer_on_phase:
                optimizer.state.clear()
            for group in optimizer.param_groups:
                group["lr"] = state.lr * ratio

    # ------------------------------------------------------------------ optimizers
    def configure_optimizers(self) -> list[torch.optim.Optimizer]:
        # Fused Adam on a GPU and under fp16: its step counts live on the device, and it takes
        # the GradScaler's found_inf on the device, where GradScaler.step with any other Adam
        # reads found_inf back to the host at every step. On a CPU otherwise the default Adam.
        fused = self.device.type == "cuda" or self._scaler() is not None

        def adam(module: nn.Module, ratio: float) -> torch.optim.Optimizer:
            betas = tuple(beta**ratio for beta in self.adam_betas)
            return torch.optim.Adam(
                module.parameters(),
                lr=self.lr * ratio,
                betas=betas,
                eps=self.adam_eps,
                **({"fused": True} if fused else {}),
            )

        return [adam(self.generator, 1.0), adam(self.discriminator, self.d_adam_ratio)]

    # ------------------------------------------------------------------ steps
    def on_train_batch_start(self, batch: Tensor, batch_idx: int) -> int | None:
        # The progressive callback has moved the data module to a new resolution: this batch is
        # from the old loader, so end the epoch; the next one rebuilds the loader.
        if batch.shape[-1] != self.trainer.datamodule.resolution:
            return -1
        return None

    def _network(self, name: str) -> Any:
        """``generator.synthesis`` or ``discriminator``, compiled when ``compile`` is on."""
        module = self.generator.synthesis if name == "synthesis" else self.discriminator
        if not self.compile:
            return module
        if name not in self._compiled:
            allow_graphs_for_every_resolution(self.generator.resolution)
            self._compiled[name] = torch.compile(module.forward, dynamic=False)
        return self._compiled[name]

    def _alpha_argument(self) -> float | Tensor:
        return self.alpha_tensor if self.compile else self.alpha

    def _discriminate(
        self, images: Tensor, *, penalty: bool = False, minibatches: int = 1
    ) -> Tensor:
        """D's fp32 logits. ``penalty``: a pass the penalties differentiate twice, which runs
        eagerly (compiled graphs do not support double backward). ``minibatches``: images is
        that many equal minibatches concatenated, which minibatch stddev keeps apart."""
        # Augmentation sits inside D's input, so the penalties differentiate through it (ADA).
        if self.augment is not None:
            images = self.augment(images)
        # One layout for reals and fakes: a compiled D guards on its input's strides, and a fake
        # from a compiled synthesis need not have the reals' (on an H200, D compiled 3 graphs per
        # resolution instead of 2). A no-op where the layout already matches.
        images = images.contiguous(memory_format=self.memory_format)
        D = self.discriminator if penalty else self._network("discriminator")
        # fp32 logits: the losses and penalties are computed in fp32 under bf16/fp16 autocast.
        kwargs = {"minibatches": minibatches} if minibatches > 1 else {}
        return D(images, resolution=self.resolution, alpha=self._alpha_argument(), **kwargs).float()

    def _discriminate_for_penalty(self, images: Tensor) -> Tensor:
        return self._discriminate(images, penalty=True)

    def _generate(self, batch_size: int) -> Tensor:
        """Fakes at the current stage, with style-mixing regularization.

        As in the official code, every training pass through the mapping updates ``w_avg``, and
        one crossover layer is drawn per minibatch (on the CPU, so the step never syncs)."""
        G = self.generator
        z = torch.randn(batch_size, G.z_dim, device=self.device)
        ws = G.map(z, update_w_avg=True)
        if self.style_mixing_prob > 0 and host_random() < self.style_mixing_prob:
            crossover = host_random(high=G.num_ws_at(self.resolution))
            ws = mix_styles(ws, G.map(torch.randn_like(z), update_w_avg=True), crossover)
        synthesis = self._network("synthesis")
        fake = synthesis(
            ws, resolution=self.resolution, alpha=self._alpha_argument(), noise_mode="random"
        )
        return fake  # [N, C, R, R]

    def _scaler(self) -> Any:
        """The fp16 GradScaler when one is enabled, else None."""
        if self._trainer is None:
            return None
        scaler = getattr(self.trainer.precision_plugin, "scaler", None)
        return scaler if scaler is not None and scaler.is_enabled() else None

    def _gradient_scale(self) -> float | Tensor:
        """The fp16 GradScaler's scale as a device tensor (1 otherwise), for penalties built from
        input gradients; ``get_scale()`` would read it back to the host at every step."""
        scaler = self._scaler()
        if scaler is None:
            return 1.0
        scale = scaler._get_scale_async()  # the scale tensor; None before the first scale()
        return float(scaler.get_scale()) if scale is None else scale

    def _discriminator_loss(self, real: Tensor, fake: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        penalty = self.penalty
        due = penalty.due(self._d_steps)
        r1_step = due and penalty.name == "r1"
        if r1_step:  # R1 differentiates the D(real) pass the loss runs anyway
            real = real.detach().requires_grad_(True)
        joint = self._joint_real_fake_pass and 2 * real.shape[0] <= self.joint_d_pass_max_batch
        if r1_step or not joint:
            real_logits = self._discriminate(real, penalty=r1_step)
            fake_logits = self._discriminate(fake)
        else:
            # One D pass over reals and fakes: half the layer calls of two passes, so less of the
            # per-call overhead that dominates small CPU batches (large ones ran slower joined:
            # conf/train.yaml). An R1 step keeps two passes: its input-gradient pass would
            # otherwise run through the fakes' half as well.
            logits = self._discriminate(torch.cat([real, fake.to(real.dtype)]), minibatches=2)
            real_logits, fake_logits = logits.split(real.shape[0])
        value = None
        if r1_step:
            value = losses.r1_penalty(real_logits, real, grad_scale=self._gradient_scale())
        elif due:
            value = losses.gradient_penalty(
                self._discriminate_for_penalty, real, fake, grad_scale=self._gradient_scale()
            )
        total, main, terms = losses.discriminator_loss(
            self.loss,
            real_logits,
            fake_logits,
            drift_weight=self.drift_weight,
            penalty=penalty,
            penalty_value=value,
        )
        logs = {f"loss/{name}": term.detach() for name, term in terms.items()}
        if self.augment is not None:
            self.augment.accumulate(real_logits, real.shape[0])
            logs["augment/p"] = self.augment.p.detach().clone()
            logs["augment/rt"] = self.augment.rt.detach().clone()
        logs["loss/d"] = main.detach()
        logs["scores/real"] = real_logits.detach().mean()
        logs["scores/fake"] = fake_logits.detach().mean()
        return total, logs

    def _generator_loss(self, fake_logits: Tensor) -> Tensor:
        if self.loss == "wgan_gp":
            return losses.wgan_g_loss(fake_logits)
        return losses.logistic_g_loss(fake_logits)

    def _should_log(self) -> bool:
        """Lightning's own every-``log_every_n_steps`` decision: logging reads tensors back to the
        host, so the step logs only then and otherwise never waits for the device."""
        connector = getattr(self.trainer, "_logger_connector", None)
        return bool(getattr(connector, "should_update_logs", True))

    def training_step(self, batch: Tensor, batch_idx: int) -> None:
        # [N, C, R, R] in [-1, 1]; while a resolution fades in, reals are blended like fakes.
        real = fade_in_reals(batch.contiguous(memory_format=self.memory_format), self.alpha)
        batch_size = real.shape[0]
        opt_g, opt_d = self.optimizers()

        for _ in range(self.n_critic):
            self.toggle_optimizer(opt_d)
            with torch.no_grad():
                fake = self._generate(batch_size)
            d_total, logs = self._discriminator_loss(real, fake)
            opt_d.zero_grad(set_to_none=True)
            self.manual_backward(d_total)
            self._average_gradients(opt_d)
            opt_d.step()
            self.untoggle_optimizer(opt_d)
            self._d_steps += 1

        self.toggle_optimizer(opt_g)
        g_loss = self._generator_loss(self._discriminate(self._generate(batch_size)))
        opt_g.zero_grad(set_to_none=True)
        self.manual_backward(g_loss)
        self._average_gradients(opt_g)
        opt_g.step()
        self.untoggle_optimizer(opt_g)

        global_batch = batch_size * self.trainer.world_size
        self._average_w_avg_over_ranks()
        self.update_ema(global_batch)
        self.images_before_step = self.images_seen
        self.images_seen += global_batch

        if not self._should_log():
            return
        logs["loss/g"] = g_loss.detach()
        self.log_dict(logs, on_step=True, on_epoch=False)
        self.log_dict(
            {
                "progress/kimg": self.images_seen / 1000.0,
                "progress/resolution": float(self.resolution),
                "progress/alpha": float(self.alpha),
                "lr": float(self.lr),
            },
            on_step=True,
            on_epoch=False,
        )
        # Images/s since the previous logging step: wall time, which is the device's time because
        # this step reads values back anyway (Lightning's ThroughputMonitor synchronized the GPU
        # at every batch end for it). Nothing goes to the progress bar: Lightning would read
        # progress-bar values back to the host at every bar refresh.
        now = time.perf_counter()
        if self._last_log is not None and now > self._last_log[0]:
            rate = (self.images_seen - self._last_log[1]) / (now - self._last_log[0])
            self.log("train/samples_per_sec", rate, on_step=True, on_epoch=False)
        self._last_log = (now, self.images_seen)

    def _average_gradients(self, optimizer: Any) -> None:
        """Average over the ranks the gradients ``optimizer`` steps next (still fp16-scaled, by
        the same scale on every rank). Lightning's own DDP wrapper has averaged them already."""
        if isinstance(self.trainer.strategy.model, DistributedDataParallel):
            return
        average_gradients(p for group in optimizer.param_groups for p in group["params"])

    @torch.no_grad()
    def _average_w_avg_over_ranks(self) -> None:
        """Each rank moved ``w_avg`` towards its own latents; their mean is the update the global
        batch makes (the update is linear), and it keeps every rank's buffer equal."""
        world = world_size()
        if world > 1:
            w_avg = self.generator.w_avg
            dist.all_reduce(w_avg)  # SUM: gloo has no AVG
            w_avg /= world

    def step_crossed(self, every_images: int) -> bool:
        """Whether the latest step passed a multiple of ``every_images`` (0 = never)."""
        if every_images <= 0:
            return False
        return self.images_seen // every_images != self.images_before_step // every_images

    # ------------------------------------------------------------------ EMA
    @torch.no_grad()
    def update_ema(self, images: int) -> None:
        """Move the EMA generator towards G; the decay gives a half-life of N kimg.

        With ``ema_rampup`` (StyleGAN2-ADA) the half-life is at most that fraction of the images
        seen, so early in a short run the EMA follows G instead of averaging in the random init."""
        half_life = self.ema_half_life_kimg * 1000.0
        if self.ema_rampup is not None:
            half_life = min(half_life, (self.images_seen + images) * self.ema_rampup)
        beta = 0.5 ** (images / half_life) if half_life > 0 else 0.0
        ema_params = list(self.generator_ema.parameters())
        params = [p.detach() for p in self.generator.parameters()]
        torch._foreach_lerp_(ema_params, params, 1.0 - beta)  # one fused kernel per dtype
        # w_avg is G's only buffer that training changes (the const noise maps are fixed).
        self.generator_ema.w_avg.copy_(self.generator.w_avg)

    # ------------------------------------------------------------------ checkpoints
    def progress_state(self) -> dict[str, Any]:
        return {
            "images_seen": int(self.images_seen),
            "resolution": int(self.resolution),
            "alpha": float(self.alpha),
            "phase_index": int(self.phase_index),
        }

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["stylegan"] = {
            "format": CHECKPOINT_FORMAT,
            "generator_config": self.generator.config,
            "progress": self.progress_state(),
            "d_steps": self._d_steps,
        }

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        saved = checkpoint.get("stylegan")
        if saved is None:
            raise ConfigError("this checkpoint was not written by stylegan's train.py")
        check_checkpoint_format(saved, "ckpt_path")
        progress = saved["progress"]
        self.images_seen = self.images_before_step = int(progress["images_seen"])
        self.resolution = int(progress["resolution"])
        self.alpha = float(progress["alpha"])
        self.phase_index = int(progress["phase_index"])
        self._d_steps = int(saved.get("d_steps", 0))
        adapt_resumed_state(self.augment, checkpoint["state_dict"])
