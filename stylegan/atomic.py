"""Atomic file writes: a temporary file beside the target, then a rename over it.

A kill at any point leaves either the old file or the new one, never a truncated one. Used for
checkpoints, ``generator.pt``, FID statistics, PNG figures, GIFs and MP4s. A write that fails
(disk full, read-only or vanished folder) removes its temporary file, leaves the old file as it
was, and raises :class:`WriteError`: one line naming the path and the reason.
"""

import contextlib
import os
import tempfile
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
        f"or make {path.parent} writable (or set paths.output_dir elsewhere), then resume"
    )


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` (same suffix); on success it replaces ``path``."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=path.suffix, dir=path.parent)
        os.close(fd)
    except OSError as exc:
        raise _write_error(path, exc) from exc
    try:
        yield Path(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())  # the bytes are on disk before the name points at them
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual mode
        os.replace(tmp, path)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError) and not isinstance(exc, WriteError):
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
