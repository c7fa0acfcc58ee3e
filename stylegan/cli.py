"""Shared behaviour of the Hydra entry points: user errors as one line, not a traceback, and
the ``device=auto|cpu|cuda|cuda:N`` choice."""

import sys
from collections.abc import Callable
from typing import TypeVar

import torch

from stylegan.errors import ConfigError, UserError

T = TypeVar("T")


def _user_error_in(exc: BaseException | None) -> UserError | None:
    """The UserError behind ``exc``: itself, or the cause Hydra's instantiate wrapped."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, UserError):
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None


def run_reporting_user_errors(fn: Callable[[], T]) -> T:
    """Call ``fn``; a :class:`UserError` prints ``error: <message>`` and exits with status 2."""
    try:
        return fn()
    except Exception as exc:
        user_error = _user_error_in(exc)
        if user_error is None:
            raise
        print(f"error: {user_error}", file=sys.stderr)
        raise SystemExit(2) from None


def resolve_device(device: object) -> torch.device:
    """``auto`` (cuda if available, else cpu), ``cpu``, ``cuda`` or ``cuda:N``."""
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(str(device))
    except RuntimeError:
        raise ConfigError(f"device must be auto, cpu, cuda or cuda:N, got {device!r}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device={device} but CUDA is not available; use device=auto or cpu")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise ConfigError(f"device={device} but only {torch.cuda.device_count()} GPU(s) exist")
    return dev
