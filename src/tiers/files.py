"""Files tiers writes: always through a temporary file and a rename."""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

from tiers.errors import UsageError

__all__ = ["atomic_write", "exists"]


def atomic_write(path: Path, body: str, *, parents: bool = True) -> None:
    """Write through a temporary file and a rename, so nothing is ever half-written.

    A symlink stays a link: the file it points to is replaced. A file keeps its mode; a
    new one gets the usual mode for the user's umask. With ``parents=False`` (a path a
    user typed) a missing folder is an error instead of being created. A path that cannot
    be written (a directory, no permission, a name too long, a read-only disk) raises
    UsageError naming it; the file that was there, if any, is left as it was.
    """
    try:
        target = path.resolve() if path.is_symlink() else path
        if target.is_dir():
            raise UsageError(f"cannot write {path}: it is a directory")
        if not parents and not target.parent.is_dir():
            raise UsageError(
                f"cannot write {path}: the folder {target.parent} does not exist; create it first"
            )
        _write(target, body)
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {_reason(exc)}") from None


def exists(path: Path) -> bool:
    """Whether ``path`` exists; a path that cannot even be looked at is an error naming it."""
    try:
        return path.exists()
    except OSError as exc:
        raise UsageError(f"cannot use {path}: {_reason(exc)}") from None


def _reason(exc: OSError) -> str:
    return (exc.strerror or str(exc)).lower()


def _write(path: Path, body: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        mode = 0o666 & ~_umask()
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name[:100]}.", dir=path.parent)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(body)
        Path(tmp).replace(path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    current = os.umask(0o022)
    os.umask(current)
    return current
