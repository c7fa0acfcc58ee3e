"""Experiment loggers: W&B that goes offline by itself, never prompts and never hangs.

``wandb_logger(mode="auto")`` runs online only when W&B credentials exist (``WANDB_API_KEY`` or a
``wandb login`` entry in ~/.netrc) and the W&B server answers within a second; otherwise it logs
offline into the run directory and says once how to upload later with ``wandb sync``. Jobs of one
Hydra multirun share a W&B group named after the sweep.
"""

import netrc
import os
import socket
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from lightning.pytorch.loggers import WandbLogger
from lightning.pytorch.utilities import rank_zero_info

from stylegan.errors import ConfigError

MODES = ("auto", "online", "offline", "disabled")


def _wandb_host() -> str:
    return urlparse(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")).hostname or ""


def _has_credentials() -> bool:
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        return netrc.netrc().authenticators(_wandb_host()) is not None
    except (FileNotFoundError, netrc.NetrcParseError, OSError):
        return False


def _server_reachable(timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((_wandb_host(), 443), timeout=timeout):
            return True
    except OSError:
        return False


def resolve_mode(mode: str) -> tuple[str, str | None]:
    """The W&B mode to use and, when it had to go offline, why."""
    if mode not in MODES:
        raise ConfigError(f"logger.wandb.mode must be one of {', '.join(MODES)}, got {mode!r}")
    env_mode = os.environ.get("WANDB_MODE")
    if mode == "auto" and env_mode in ("online", "offline", "disabled"):
        mode = env_mode
    if mode != "auto":
        return mode, None
    if not _has_credentials():
        return "offline", "no W&B credentials (WANDB_API_KEY or `wandb login`)"
    if not _server_reachable():
        return "offline", f"W&B server {_wandb_host()} not reachable"
    return "online", None


def multirun_group() -> str | None:
    """The sweep's name when running under ``-m``, so its jobs form one W&B group."""
    try:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        hydra_cfg = HydraConfig.get()
    except (ImportError, ValueError):  # not running under Hydra (tests calling train())
        return None
    if hydra_cfg.mode != RunMode.MULTIRUN:
        return None
    sweep_dir = Path(hydra_cfg.sweep.dir)
    return f"{hydra_cfg.job.name}-{sweep_dir.parent.name}-{sweep_dir.name}"


def wandb_logger(
    *,
    project: str = "stylegan",  # W&B project
    name: str | None = None,  # run name; None = W&B's
    group: str | None = None,  # None = the multirun's sweep name, or no group
    tags: list[str] | None = None,
    save_dir: str = ".",  # the run directory; W&B writes save_dir/wandb/
    mode: str = "auto",  # auto | online | offline | disabled
    **kwargs: Any,  # passed to WandbLogger / wandb.init
) -> WandbLogger:
    """A WandbLogger in the mode :func:`resolve_mode` picks; never prompts for a login."""
    resolved, reason = resolve_mode(mode)
    Path(save_dir).mkdir(parents=True, exist_ok=True)
    # Never ask on stdin (CI has none), and keep wandb's own console chatter down.
    os.environ.setdefault("WANDB_SILENT", "true")
    os.environ["WANDB_MODE"] = resolved
    logger = WandbLogger(
        project=project,
        name=name,
        group=group or multirun_group(),
        tags=list(tags or []),
        save_dir=save_dir,
        offline=resolved == "offline",
        mode=resolved,
        **kwargs,
    )
    if reason is not None:
        rank_zero_info(
            f"W&B offline: {reason}; this run logs to {Path(save_dir) / 'wandb'}, "
            f"upload it later with `wandb sync {Path(save_dir) / 'wandb'}/offline-run-*`"
        )
    return logger
