"""Atomic file writes: readers see the old file or the new one, never half of one."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from glob import escape as glob_escape
from pathlib import Path
from typing import BinaryIO

__all__ = ["atomic_write", "remove_stale", "temporaries"]


@contextmanager
def atomic_write(path: str | Path) -> Iterator[BinaryIO]:
    """Open a temporary file beside ``path`` for binary writing; move it into place on success.

    The temporary file is flushed and synced, given the usual permissions
    (``0o666`` minus the umask), then renamed over ``path`` with
    :func:`os.replace`. On any error it is removed and ``path`` is untouched.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=_prefix(path), suffix=".tmp")
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _prefix(path: Path) -> str:
    return f".{path.name}."


def temporaries(path: str | Path) -> list[Path]:
    """The temporary files :func:`atomic_write` leaves beside ``path`` when it is killed."""
    path = Path(path)
    if not path.parent.is_dir():
        return []
    return sorted(path.parent.glob(f"{glob_escape(_prefix(path))}*.tmp"))


def remove_stale(path: str | Path) -> int:
    """Remove the temporaries a killed writer of ``path`` left behind; returns how many.

    Call it only where no other process is writing ``path`` (a training run owns its
    checkpoint).
    """
    found = temporaries(path)
    for tmp in found:
        tmp.unlink(missing_ok=True)
    return len(found)
