"""One environment's redis-server: its own port, data directory, append-only file and log.

The server runs in its own session, outlives the tiers command that started it and is
found again through its pid file, so ``start`` and ``stop`` can be repeated freely.
"""

from __future__ import annotations

import shutil
import socket
import time
from pathlib import Path

from tiers.errors import PlatformError, UsageError
from tiers.files import atomic_write
from tiers.platforms.local._proc import alive, cwd, program, read_pid, spawn, terminate
from tiers.platforms.local.ports import HOST, port_in_use, wait_for_port
from tiers.platforms.local.supervisor import tail

__all__ = ["RedisServer"]

_PING = b"*1\r\n$4\r\nPING\r\n"
_LOG_LINES = 20


class RedisServer:
    """The redis-server of one environment, under ``root / "redis"``.

    Data is kept in an append-only file, so it survives a stop and a start. Every method
    may be called again: starting a running server or stopping a stopped one does nothing.

    >>> server = RedisServer(Path(".tiers/staging"), 6380, "staging")   # doctest: +SKIP
    >>> server.start()
    >>> server.url
    'redis://127.0.0.1:6380/0'
    >>> server.ping()
    True
    >>> server.stop()
    """

    START_TIMEOUT = 10.0
    STOP_TIMEOUT = 10.0

    def __init__(self, root: Path, port: int, name: str) -> None:
        if not 1 <= port <= 65535:
            raise UsageError(f"{name}'s redis: port {port} is not a TCP port (1-65535)")
        self.port = port
        self.name = name
        self.dir = root.absolute() / "redis"
        self.log = self.dir / "redis.log"
        self.pid_file = self.dir / "redis.pid"

    @property
    def url(self) -> str:
        """Where the environment's processes reach it (database 0)."""
        return f"redis://{HOST}:{self.port}/0"

    def start(self) -> None:
        """Start the server unless it already runs; returns once it answers PING."""
        pid = self.pid()
        if pid is not None:
            if self._ready(pid):
                return
            self.stop()  # alive but deaf on our port: start it afresh
        binary = self._binary()
        if port_in_use(self.port):
            raise PlatformError(
                f"port {self.port} for {self.name}'s redis is taken by another process; "
                "choose another port in tiers.toml"
            )
        pid = self._launch(binary)
        if not self._ready(pid):
            self._fail(pid)

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL after a while); nothing if it is stopped."""
        pid = self.pid()
        if pid is not None:
            terminate(pid, self.STOP_TIMEOUT)
        self.pid_file.unlink(missing_ok=True)

    def running(self) -> bool:
        """True when the server started for this environment is alive and answers PING."""
        return self.pid() is not None and self.ping()

    def ping(self) -> bool:
        """True when a Redis server answers PING on this environment's port."""
        try:
            with socket.create_connection((HOST, self.port), timeout=1.0) as sock:
                sock.sendall(_PING)
                return sock.recv(64).startswith(b"+PONG")
        except OSError:
            return False

    def pid(self) -> int | None:
        """The pid of the running server, or None; a stale pid file is removed."""
        pid = read_pid(self.pid_file)
        if pid is not None and alive(pid) and self._is_ours(pid):
            return pid
        self.pid_file.unlink(missing_ok=True)
        return None

    def _is_ours(self, pid: int) -> bool:
        # A pid is reused after a reboot or a crash: it must still be a redis-server, and
        # one working in this environment's directory (redis-server chdirs into --dir).
        if program(pid) != "redis-server":
            return False
        where = cwd(pid)
        return where is None or where == self.dir.resolve()

    def _binary(self) -> str:
        binary = shutil.which("redis-server")
        if binary is None:
            raise PlatformError(
                f"{self.name}'s redis: redis-server not found on PATH; "
                "install it: apt-get install redis-server"
            )
        return binary

    def _launch(self, binary: str) -> int:
        self.dir.mkdir(parents=True, exist_ok=True)
        try:
            pid = spawn(self._argv(binary), self.log)
        except OSError as exc:
            raise PlatformError(
                f"{self.name}'s redis: cannot run {binary}: {exc.strerror}"
            ) from None
        atomic_write(self.pid_file, f"{pid}\n")
        return pid

    def _argv(self, binary: str) -> list[str]:
        return [
            binary,
            "--port", str(self.port),
            "--bind", HOST,
            "--dir", str(self.dir),
            "--appendonly", "yes",
            "--logfile", str(self.log),
            "--daemonize", "no",
        ]  # fmt: skip

    def _ready(self, pid: int) -> bool:
        deadline = time.monotonic() + self.START_TIMEOUT
        if not wait_for_port(self.port, self.START_TIMEOUT, pid):
            return False
        while alive(pid):  # the port opens before the append-only file is loaded
            if self.ping():
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)
        return False

    def _fail(self, pid: int) -> None:
        exited = not alive(pid)
        if not exited:
            terminate(pid, self.STOP_TIMEOUT)
        self.pid_file.unlink(missing_ok=True)
        what = (
            "exited at start"
            if exited
            else f"did not answer on port {self.port} within {self.START_TIMEOUT:g}s"
        )
        last = "\n".join(tail(self.log, _LOG_LINES))
        raise PlatformError(f"{self.name}'s redis-server {what}; {self.log} ends:\n{last}")
