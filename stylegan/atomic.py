"""Atomic file writes: a temporary file beside the target, fsynced, then a rename over it.

A kill at any point leaves either the old file or the new one, never a truncated one. Used for
checkpoints, ``generator.pt``, the FID cache, the prepared data cache, PNG figures, GIFs and MP4s.
A write that fails (disk full, read-only or vanished folder) removes its temporary file, leaves
the old file as it was, and raises :class:`WriteError`: one line naming the path and the reason.

Temporaries are named ``.tmp-<host>-<pid>-<id>-<name>``: unique per process, so concurrent writers
(one per node under DDP) never write into each other's files, and
:func:`remove_dead_temporaries` can delete what a killed process of this host left behind.
"""

import contextlib
import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from stylegan.errors import UserError


class WriteError(UserError, OSError):
    """A file could not be written (disk full, read-only, permissions); the old one is intact."""


def _write_error(path: Path, exc: OSError) -> WriteError:
    reason = exc.strerror or str(exc) or type(exc).__name__
    return WriteError(
        f"cannot write {path}: {reason}; the previous {path.name} (if any) is intact. Free space "
        f"or make {path.parent} writable (or point paths.output_dir / paths.cache_dir elsewhere), "
        "then resume"
    )


def _temporary_name(path: Path) -> Path:
    """``.tmp-<host>-<pid>-<id>-<name>`` beside ``path`` (the same suffix, for writers that
    choose a format by it)."""
    return path.with_name(
        f".tmp-{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:12]}-{path.name}"
    )


def remove_dead_temporaries(folder: str | os.PathLike) -> None:
    """Delete the temporaries in ``folder`` that killed processes of this host left behind."""
    host = socket.gethostname()
    for path in Path(folder).glob(".tmp-*"):
        rest = path.name[len(".tmp-") :]
        if not rest.startswith(host + "-"):
            continue
        pid = rest[len(host) + 1 :].split("-", 1)[0]
        if not pid.isdigit():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            path.unlink(missing_ok=True)
        except OSError:
            pass  # alive, or not ours to signal


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` (same suffix); on success it replaces ``path``."""
    path = Path(path)
    tmp = _temporary_name(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "xb"):
            pass  # claim the name; the writer overwrites it
    except OSError as exc:
        raise _write_error(path, exc) from exc
    try:
        yield tmp
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())  # the bytes are on disk before the name points at them
        os.chmod(tmp, 0o666 & ~_umask())  # the usual mode, whatever the writer made
        os.replace(tmp, path)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError) and not isinstance(exc, UserError):  # already one line
            raise _write_error(path, exc) from exc
        raise


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> Path:
    """``torch.save(obj, path)``, atomically."""
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)
    return Path(path)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
