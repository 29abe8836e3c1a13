"""Files tiers writes: always through a temporary file and a rename."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from tiers.errors import UsageError

__all__ = ["atomic_write"]


def atomic_write(path: Path, body: str) -> None:
    """Write through a temporary file and a rename, so nothing is ever half-written.

    A path that cannot be written (a directory, no permission, a read-only disk) raises
    UsageError naming it; the file that was there, if any, is left as it was.
    """
    if path.is_dir():
        raise UsageError(f"cannot write {path}: it is a directory")
    try:
        _write(path, body)
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror or exc}") from None


def _write(path: Path, body: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(body)
        Path(tmp).replace(path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
