"""The supervisor: runs process groups, restarts them by policy, keeps their logs.

It is one long-lived process per project (``python -m tiers.platforms.local ROOT``),
answering HTTP + JSON on the Unix socket ``ROOT/supervisor.sock``:

- ``GET /processes``: every process with its state, pid, restarts, exit code and
  uptime (seconds since it last started);
- ``PUT /processes/NAME`` with ``{"command", "cwd", "env", "restart"}``: (re)start it;
  ``env`` (the tier's secrets among it) is kept in memory only, to restart the process
  with, and never written to disk nor answered back;
- ``DELETE /processes/NAME``: stop it (SIGTERM to its process group, then SIGKILL);
- ``GET /logs/NAME?lines=N``: the last lines of its log (``ROOT/logs/NAME.log``).

Children run in their own process group and are told by the kernel to stop when the
supervisor dies (``PR_SET_PDEATHSIG``), so even ``kill -9`` of the supervisor leaves no
orphan behind; ``tiers up`` then starts a new supervisor and the processes again.

>>> client = SupervisorClient(root / "supervisor.sock")          # doctest: +SKIP
>>> client.start("staging.app", "uvicorn app:app", cwd=".", env={}, restart="always")
"""

from __future__ import annotations

import contextlib
import ctypes
import http.client
import json
import os
import signal
import socket
import socketserver
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qs, urlsplit

from tiers.errors import PlatformError

Restart = Literal["always", "on-failure", "never"]
STOP_TIMEOUT = 10.0
_BACKOFF = (0.5, 1.0, 2.0, 5.0)  # seconds between restarts of a process that keeps dying
_PR_SET_PDEATHSIG = 1


@dataclass
class _Process:
    name: str
    command: str
    cwd: str
    env: dict[str, str]
    restart: Restart
    log: Path
    popen: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    exit_code: int | None = None
    stopping: bool = False
    started_at: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def describe(self) -> dict[str, Any]:
        alive = self.popen is not None and self.popen.poll() is None
        return {
            "name": self.name,
            "state": "running" if alive else ("stopped" if self.stopping else "exited"),
            "pid": self.popen.pid if alive and self.popen else None,
            "restarts": self.restarts,
            "exit_code": self.exit_code,
            "uptime": time.monotonic() - self.started_at if alive else None,
            "restart": self.restart,
            "command": self.command,
            "log": str(self.log),
        }


# The parent-death signal reaches only the shell; when the supervisor dies, the shell
# passes it on to its whole process group, so nothing the command started is orphaned.
GUARDED = "trap 'trap - TERM; kill -TERM 0' TERM\n( {command}\n) &\nwait $!"


def die_with_parent() -> None:
    os.setsid()
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class Supervisor:
    """Owns the child processes; the HTTP handler below only calls these methods."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.logs = root / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.processes: dict[str, _Process] = {}
        self.closing = threading.Event()
        # The kernel's parent-death signal follows the *thread* that forked a child, so
        # every child is forked by this one long-lived thread, never by a request thread.
        self.spawner = ThreadPoolExecutor(max_workers=1, thread_name_prefix="spawner")

    def start(self, name: str, spec: dict[str, Any]) -> dict[str, Any]:
        if name in self.processes:
            self.stop(name)
        process = _Process(
            name=name,
            command=str(spec["command"]),
            cwd=str(spec.get("cwd") or "."),
            env={str(k): str(v) for k, v in dict(spec.get("env") or {}).items()},
            restart=spec.get("restart", "on-failure"),
            log=self.logs / f"{name}.log",
        )
        self.processes[name] = process
        self._spawn(process)
        threading.Thread(target=self._watch, args=(process,), daemon=True).start()
        return process.describe()

    def _spawn(self, process: _Process) -> None:
        self.spawner.submit(self._fork, process).result()

    def _fork(self, process: _Process) -> None:
        with process.log.open("ab") as log:
            process.popen = subprocess.Popen(  # commands come from tiers.toml, run by a shell
                GUARDED.format(command=process.command),
                shell=True,
                cwd=process.cwd,
                env=process.env,  # what tiers gives it, never the caller's shell
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=die_with_parent,  # noqa: PLW1509 - no threads run in the child
            )
        process.started_at = time.monotonic()

    def _watch(self, process: _Process) -> None:
        failures = 0
        while not self.closing.is_set():
            popen = process.popen
            if popen is None:
                return
            code = popen.wait()
            with process.lock:
                if process.stopping or self.processes.get(process.name) is not process:
                    return
                process.exit_code = code
                if process.restart == "never" or (process.restart == "on-failure" and code == 0):
                    return
                lived = time.monotonic() - process.started_at
                failures = 0 if lived > 30 else failures + 1
            _note(process.log, f"exited with {code}; restarting")
            if self.closing.wait(_BACKOFF[min(failures, len(_BACKOFF) - 1)]):
                return
            with process.lock:
                if process.stopping:
                    return
                process.restarts += 1
                self._spawn(process)

    def stop(self, name: str, grace: float = STOP_TIMEOUT) -> dict[str, Any]:
        """SIGTERM the process group; SIGKILL what is left after ``grace`` seconds."""
        process = self.processes.pop(name, None)
        if process is None:
            return {"name": name, "state": "unknown"}
        with process.lock:
            process.stopping = True
        if process.popen is not None:
            _terminate(process.popen, grace)
            process.exit_code = process.popen.returncode
        return process.describe()

    def stop_all(self) -> None:
        self.closing.set()
        for name in list(self.processes):
            self.stop(name)
        self.spawner.shutdown()

    def tail(self, name: str, lines: int) -> list[str]:
        path = self.logs / f"{name}.log"
        return tail(path, lines)


def tail(path: Path, lines: int) -> list[str]:
    """The last ``lines`` lines of a log file (empty when there is none)."""
    try:
        with path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - 64 * 1024))
            text = handle.read().decode("utf-8", "replace")
    except FileNotFoundError:
        return []
    return text.splitlines()[-lines:] if lines > 0 else []


def _note(log: Path, message: str) -> None:
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S")
    with log.open("a", encoding="utf-8") as handle:
        handle.write(f"[tiers {stamp}] {message}\n")


def _terminate(popen: subprocess.Popen[bytes], grace: float = STOP_TIMEOUT) -> None:
    """SIGTERM the whole process group, wait until every member is gone, else SIGKILL."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(popen.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while _group_alive(popen) and time.monotonic() < deadline:
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(popen.pid, signal.SIGKILL)
    popen.wait()


def _group_alive(popen: subprocess.Popen[bytes]) -> bool:
    """Whether a member of the group still runs; zombies waiting to be reaped do not."""
    popen.poll()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            # "pid (comm) state ppid pgrp ...": comm may hold spaces, so split after ')'
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == popen.pid and fields[0] != "Z":
            return True
    return False


# -- the HTTP side -------------------------------------------------------------------------


class _Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    supervisor: Supervisor


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        parts = url.path.strip("/").split("/")
        sup = self.server.supervisor
        if parts == ["processes"]:
            self._reply(200, [p.describe() for p in sup.processes.values()])
        elif len(parts) == 2 and parts[0] == "logs":
            lines = int(parse_qs(url.query).get("lines", ["50"])[0])
            self._reply(200, {"name": parts[1], "lines": sup.tail(parts[1], lines)})
        elif parts == ["health"]:
            self._reply(200, {"pid": os.getpid()})
        else:
            self._reply(404, {"error": f"no such resource {url.path}"})

    def do_PUT(self) -> None:
        name = self._name()
        length = int(self.headers.get("Content-Length", "0"))
        spec = json.loads(self.rfile.read(length) or b"{}")
        if name is None or "command" not in spec:
            self._reply(400, {"error": "PUT /processes/NAME with a JSON body with a command"})
            return
        try:
            self._reply(200, self.server.supervisor.start(name, spec))
        except OSError as exc:
            self._reply(500, {"error": f"cannot start {name}: {exc}"})

    def do_DELETE(self) -> None:
        name = self._name()
        if name is None:
            self._reply(404, {"error": "DELETE /processes/NAME"})
        else:
            query = parse_qs(urlsplit(self.path).query)
            grace = float(query.get("timeout", [STOP_TIMEOUT])[0])
            self._reply(200, self.server.supervisor.stop(name, grace))

    def _name(self) -> str | None:
        parts = urlsplit(self.path).path.strip("/").split("/")
        return parts[1] if len(parts) == 2 and parts[0] == "processes" else None

    def _reply(self, status: int, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # requests are not worth a log line; process output is


def serve(root: Path) -> None:
    """Run the supervisor in this process until SIGTERM or SIGINT."""
    root.mkdir(parents=True, exist_ok=True)
    path = root / "supervisor.sock"
    path.unlink(missing_ok=True)
    supervisor = Supervisor(root)
    server = _Server(str(path), _Handler)
    server.supervisor = supervisor

    def shutdown(*_: Any) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, shutdown)
    signal.signal(signal.SIGINT, shutdown)
    (root / "supervisor.pid").write_text(str(os.getpid()))
    try:
        server.serve_forever()
    finally:
        supervisor.stop_all()
        server.server_close()
        path.unlink(missing_ok=True)
        (root / "supervisor.pid").unlink(missing_ok=True)


# -- the client side -----------------------------------------------------------------------


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: Path, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self.unix_path = str(path)

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.unix_path)


class SupervisorClient:
    """Talks to a running supervisor over its Unix socket."""

    def __init__(self, socket_path: Path, timeout: float = STOP_TIMEOUT + 5) -> None:
        self.path = socket_path
        self.timeout = timeout

    def alive(self) -> bool:
        try:
            self._call("GET", "/health")
        except PlatformError:
            return False
        return True

    def processes(self) -> list[dict[str, Any]]:
        return list(self._call("GET", "/processes"))

    def start(
        self, name: str, command: str, *, cwd: str, env: dict[str, str], restart: Restart
    ) -> dict[str, Any]:
        body = {"command": command, "cwd": cwd, "env": env, "restart": restart}
        return dict(self._call("PUT", f"/processes/{name}", body))

    def stop(self, name: str, grace: float = STOP_TIMEOUT) -> dict[str, Any]:
        """Stop ``name``: SIGTERM, and SIGKILL after ``grace`` seconds (its requests drain)."""
        path = f"/processes/{name}?timeout={grace:g}"
        return dict(self._call("DELETE", path, timeout=max(self.timeout, grace + 5)))

    def logs(self, name: str, lines: int = 50) -> list[str]:
        return list(self._call("GET", f"/logs/{name}?lines={lines}")["lines"])

    def _call(self, method: str, path: str, body: Any = None, timeout: float = 0) -> Any:
        connection = _UnixConnection(self.path, timeout or self.timeout)
        try:
            data = json.dumps(body).encode() if body is not None else None
            headers = {"Content-Type": "application/json"} if data else {}
            connection.request(method, path, body=data, headers=headers)
            response = connection.getresponse()
            payload = json.loads(response.read() or b"null")
        except (OSError, http.client.HTTPException, ValueError) as exc:
            raise PlatformError(f"the supervisor at {self.path} does not answer: {exc}") from None
        finally:
            connection.close()
        if response.status >= 400:
            raise PlatformError(f"supervisor: {payload.get('error', response.status)}")
        return payload


def spawn(root: Path) -> subprocess.Popen[bytes]:
    """Start a supervisor for ``root`` in the background; returns once it answers."""
    root.mkdir(parents=True, exist_ok=True)
    with (root / "supervisor.log").open("ab") as log:
        popen = subprocess.Popen(
            [sys.executable, "-m", "tiers.platforms.local", str(root)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    client = SupervisorClient(root / "supervisor.sock", timeout=1)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if client.alive():
            return popen
        if popen.poll() is not None:
            break
        time.sleep(0.05)
    last = "\n".join(tail(root / "supervisor.log", 20))
    raise PlatformError(f"the supervisor did not start; its log ends:\n{last}")
