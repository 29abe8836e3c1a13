"""Local TCP ports: find a free one, see whether one is taken, wait for one to answer.

Everything here speaks to 127.0.0.1 only: the local platform never listens elsewhere.

>>> port = free_port()
>>> port_in_use(port)
False
"""

from __future__ import annotations

import contextlib
import errno
import socket
import subprocess
import time
import urllib.request
from typing import Any

from tiers.errors import PlatformError
from tiers.platforms.local._proc import alive

__all__ = ["free_port", "http_ok", "port_in_use", "wait_for_port"]

HOST = "127.0.0.1"
_POLL = 0.05  # seconds between two connection attempts
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def free_port() -> int:
    """A port nothing listens on right now (the kernel's pick), for a server to take."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def port_in_use(port: int) -> bool:
    """True when something listens on ``port`` or holds it bound, so a server cannot bind it."""
    if _answers(port):
        return True
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # Servers set SO_REUSEADDR too, so a port left in TIME_WAIT does not count as taken.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return True
            raise PlatformError(f"port {port} cannot be used: {exc.strerror}") from None
    return False


def wait_for_port(
    port: int, timeout: float, process: subprocess.Popen[Any] | int | None = None
) -> bool:
    """Wait until something accepts connections on ``port``; False after ``timeout`` seconds.

    ``process`` (a Popen or a pid) is the server expected to answer: when it exits, the
    wait ends at once with False instead of running out the clock.
    """
    deadline = time.monotonic() + timeout
    while True:
        if _answers(port):
            return True
        if _exited(process) or time.monotonic() >= deadline:
            return False
        time.sleep(_POLL)


def http_ok(url: str) -> bool:
    """True when ``url`` answers with a 2xx status within two seconds (redirects followed,
    never through a proxy named by the environment: these are local addresses)."""
    try:
        with _DIRECT.open(url, timeout=2) as response:
            return bool(200 <= response.status < 300)
    except (OSError, ValueError):
        return False


def _answers(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((HOST, port), timeout=0.5):
        return True
    return False


def _exited(process: subprocess.Popen[Any] | int | None) -> bool:
    if process is None:
        return False
    if isinstance(process, int):
        return not alive(process)
    return process.poll() is not None
