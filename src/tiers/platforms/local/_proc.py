"""Processes known by pid alone: servers that outlive the tiers command that started them.

A data service must keep running after ``tiers up`` returns, so it is not held as a Popen
(whose owner would have to wait for it); it is found again through its pid file. These
helpers answer the questions that come with that: is the pid alive, is it still the
process we started, and how to end it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Sequence
from pathlib import Path

_POLL = 0.05  # seconds between two looks at a process that is stopping


def spawn(argv: Sequence[str], log: Path, env: dict[str, str] | None = None) -> int:
    """Start ``argv`` in its own session, output appended to ``log``; returns its pid.

    ``argv[0]`` is the program's path (PATH is not searched). Its own session keeps a
    Ctrl-C at the terminal that ran tiers from reaching it.
    """
    actions = [
        (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
        (os.POSIX_SPAWN_OPEN, 1, str(log), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644),
        (os.POSIX_SPAWN_DUP2, 1, 2),
    ]
    return os.posix_spawn(
        argv[0],
        list(argv),
        dict(os.environ if env is None else env),
        file_actions=actions,
        setsid=True,
    )


def alive(pid: int) -> bool:
    """True while ``pid`` runs; a zombie counts as gone (and is reaped when it is ours)."""
    if pid <= 0:
        return False
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass  # not our child: ask the kernel below
    else:
        return done == 0
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, run by another user
    return _state(pid) not in ("Z", "X", "")


def program(pid: int) -> str:
    """The name of the program ``pid`` runs ("" when it is gone or hidden).

    The kernel's name for it, which stays when a server rewrites its command line
    to show its state (as redis-server and postgres do).
    """
    try:
        return Path(f"/proc/{pid}/comm").read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        return ""


def cwd(pid: int) -> Path | None:
    """The working directory of ``pid`` (servers chdir into their data directory)."""
    try:
        return Path(f"/proc/{pid}/cwd").readlink()
    except OSError:
        return None


def terminate(pid: int, timeout: float) -> None:
    """SIGTERM, wait up to ``timeout`` seconds, then SIGKILL; returns once it is gone."""
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
        if _gone(pid, wait):
            return


def read_pid(path: Path) -> int | None:
    """The pid written in ``path``, or None when the file is missing or not a pid."""
    try:
        text = path.read_text(encoding="utf-8").split("\n", 1)[0].strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def _gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while alive(pid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(_POLL)
    return True


def _state(pid: int) -> str:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    # the command name in parentheses may hold spaces; the state is the field after it
    return stat.rpartition(")")[2].split()[0]
