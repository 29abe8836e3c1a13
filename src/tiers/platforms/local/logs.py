"""Reading the process logs the supervisor keeps (``.tiers/local/logs/ENV.SERVICE.PROC.log``)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from tiers.errors import UsageError
from tiers.platforms.local.releases import LocalReleases
from tiers.platforms.local.supervisor import tail

if TYPE_CHECKING:
    from tiers.platforms.local.platform import LocalPlatform

__all__ = ["follow_logs", "log_files", "log_sizes"]

_COLOURS = ("36", "33", "32", "35", "34", "31")  # cyan, yellow, green, magenta, blue, red


def log_files(platform: LocalPlatform, environment: str, process: str | None) -> dict[str, Path]:
    """``{"backend.app": path, ...}`` for ``environment``, or just ``process``.

    A process that ran in several releases (``backend.app@12``, ``backend.app@13``) is
    shown by the log of the live release, else the newest; ``backend.app@12`` names one.
    """
    if environment not in platform.config.environments:
        known = ", ".join(platform.config.environments)
        raise UsageError(f"no environment {environment!r}; known: {known}")
    prefix = f"{environment}."
    paths = sorted((platform.state / "logs").glob(f"{prefix}*.log"), key=_mtime)
    if process is not None and "@" in process:
        exact = platform.state / "logs" / f"{prefix}{process}.log"
        if exact.exists():
            return {process: exact}
    live = {n for i in LocalReleases(platform).live(environment).values() for n in i.processes}
    chosen: dict[str, tuple[Path, bool]] = {}
    for path in paths:
        name = path.name.removesuffix(".log")
        base = name.removeprefix(prefix).partition("@")[0]
        if not chosen.get(base, (path, False))[1]:  # a live release's log stays chosen
            chosen[base] = (path, name in live)
    found = {base: chosen[base][0] for base in sorted(chosen)}
    if process is None:
        if not found:
            raise UsageError(
                f"{environment} has no logs yet; start it with `tiers up {environment}`"
            )
        return found
    if process not in found:
        raise UsageError(
            f"no process {process!r} in {environment}; known: {', '.join(found) or 'none'}"
        )
    return {process: found[process]}


def log_sizes(platform: LocalPlatform, environment: str) -> dict[Path, int]:
    """How long each log of ``environment`` is now: where lines written from now on begin."""
    return {
        path: path.stat().st_size
        for path in (platform.state / "logs").glob(f"{environment}.*.log")
        if path.is_file()
    }


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def follow_logs(
    files: dict[str, Path],
    lines: int,
    follow: bool,
    emit: Callable[[str], None],
    *,
    colour: bool = False,
    since: dict[Path, int] | None = None,
) -> None:
    """Print the last ``lines`` of each file; with ``follow``, keep printing until Ctrl-C.

    With ``since`` (from ``log_sizes``), what each file got since then is printed instead
    of its last lines (a file that was not there yet: all of it).

    Each line starts with its process's name, padded, and with ``colour`` in a colour of
    its own (ANSI), as foreman and honcho do.
    """
    width = max(len(name) for name in files)
    prefix = {
        name: (
            f"\x1b[{_COLOURS[i % len(_COLOURS)]}m{name:<{width}} |\x1b[0m"
            if colour
            else f"{name:<{width}} |"
        )
        for i, name in enumerate(files)
    }
    offsets = {}
    for name, path in files.items():
        if since is not None:
            offsets[name] = since.get(path, 0)
            continue
        for line in tail(path, lines):
            emit(f"{prefix[name]} {line}")
        offsets[name] = _size(path)
    if since is not None:
        _print_new(files, offsets, prefix, emit)
    while follow:
        time.sleep(0.2)
        _print_new(files, offsets, prefix, emit)


def _print_new(
    files: dict[str, Path],
    offsets: dict[str, int],
    prefix: dict[str, str],
    emit: Callable[[str], None],
) -> None:
    """Print what each file got past its offset, and move the offset on."""
    for name, path in files.items():
        size = _size(path)
        if size < offsets[name]:
            offsets[name] = 0  # the log was truncated
        if size > offsets[name]:
            with path.open("rb") as handle:
                handle.seek(offsets[name])
                chunk = handle.read().decode("utf-8", "replace")
            offsets[name] = size
            for line in chunk.splitlines():
                emit(f"{prefix[name]} {line}")


def _size(path: Path) -> int:
    return path.stat().st_size if path.exists() else 0
