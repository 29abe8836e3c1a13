"""The access gate of a protected environment on the local platform.

An environment with ``access.protect`` and provider ``tiers`` gets its gate (``tiers gate
serve ENV``) as one more supervised process, ``ENV.gate``, on two ports the platform keeps
in ``ENV/gate.port`` (its pages, and the listener that answers Caddy's ``/verify``),
started by ``tiers up`` and before every deploy (and started again when the environment's
rules change: the gate reads them when it starts); it gets the
environment's gate secrets (SMTP password, OAuth client secrets) from the tier's store, in
memory, as app processes get theirs.

In front of each of the environment's Caddy sites stand, in this order (:func:`front`):

1. a ``headers`` handler deleting client-sent ``Tiers-Access-Jwt-Assertion`` and
   ``Tiers-Access-Identity`` (in any case, with ``_`` for ``-`` too) on every request,
   bypass paths included, so only the gate can name an identity to the app (any other
   ``Tiers-Access-*`` a client sends reaches the gate, which refuses it with a 400, but
   for a service token's two headers);
2. a route sending the gate's own pages (``/.tiers/access/*``: login, code, logout,
   certs, session, health) straight to the gate;
3. ``forward_auth`` to the gate's ``/verify`` listener (what ``caddy adapt`` expands the Caddyfile
   directive to): a 2xx lets the request on, with the gate's ``Tiers-Access-Jwt-Assertion``
   and ``Tiers-Access-Identity`` copied onto it; any other answer (a 302 to the login page,
   401, 403, 400) goes back to the client as it is. The gate decides bypass paths too;
4. a ``headers`` handler taking a service token's headers (``Tiers-Access-Client-Id``,
   ``-Secret``) off the request, so the app never sees the token's secret;
5. a ``headers`` handler taking the gate's own cookies (session, login flow, OAuth state,
   of any tier) out of the ``Cookie`` header, so no app holds a session it could leak; the
   app's own cookies go on as they came. The sites of a tier without a gate have this
   one too: on this machine every tier is on ``localhost``, where browsers send each
   tier's cookies to every port.

Caddy never fails open: a gate that does not answer makes ``forward_auth`` fail, and the
request ends there with a 502, never at the app. Caddy first keeps dialling it for a few
seconds (:data:`RETRY`), so a gate being started again (new rules, or after a crash) makes
requests wait, not fail. The upstream request to the gate is a GET without the body, so an
upload refused at the door never reaches the app.

The app's own port on 127.0.0.1 is reachable around Caddy, so the platform tells each app
process where to check the assertion the gate adds (what Cloudflare asks of an origin
behind Access): ``TIERS_ACCESS_JWKS_URL``, ``TIERS_ACCESS_AUDIENCE``,
``TIERS_ACCESS_ISSUER`` and the paths it may serve without one (``TIERS_ACCESS_BYPASS``,
the bypass patterns for its host, comma-separated) (:func:`app_variables`).
"""

from __future__ import annotations

import hashlib
import os
import shlex
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tiers.config import Environment
from tiers.errors import PlatformError
from tiers.platforms.local.ports import free_port, http_ok, port_in_use
from tiers.redaction import register
from tiers.secrets import Store

if TYPE_CHECKING:
    from tiers.platforms.local.platform import LocalPlatform

__all__ = [
    "GATE_COOKIES",
    "IDENTITY_HEADERS",
    "PREFIX",
    "RETRY",
    "TOKEN_HEADERS",
    "LocalGate",
    "app_variables",
    "enforced",
    "front",
    "gate_secrets",
    "no_gate_cookies",
]

HOST = "127.0.0.1"
PREFIX = "/.tiers/access/"
"""Where the gate's own pages live on every protected host."""
IDENTITY_HEADERS = ("Tiers-Access-Jwt-Assertion", "Tiers-Access-Identity")
"""What the gate adds to a request it lets through (and Caddy copies to the app)."""
TOKEN_HEADERS = ("Tiers-Access-Client-Id", "Tiers-Access-Client-Secret")
"""A service token, for the gate only: taken off the request before it goes on."""
RETRY = {"try_duration": "5s", "try_interval": "50ms"}
"""How long Caddy keeps dialling a gate that does not accept (Caddy's ``load_balancing``):
a gate started again on new rules, or by its supervisor after a crash, listens within a
second, and the requests that come meanwhile wait for it instead of failing. A gate that
stays down still lets nothing through: 502 once the time is up."""
GATE_COOKIES = (
    r"(^|;)[ \t]*(__Host-)?tiers_(session|login|oauth)_[^=;]*=[^;]*",
    r"^[; \t]+",
)
"""Two regular expressions (Go's syntax), each replaced by nothing in the ``Cookie`` header
the app gets: the gate's own cookies (``COOKIE_KINDS`` in :mod:`tiers.gate.sessions`),
then what is left of the separator before them."""


def _spellings(names: tuple[str, ...]) -> list[str]:
    # Caddy matches names in any case; some frameworks read "_" as "-", so both go
    return [*names, *(n.replace("-", "_") for n in names)]


START_TIMEOUT = 30.0
_POLL = 0.1
_LOG_LINES = 20


def enforced(env: Environment) -> bool:
    """Whether this platform runs a gate for ``env``: protected, by tiers' own gate."""
    return env.access.protect and env.access.provider == "tiers"


def process_name(environment: str) -> str:
    return f"{environment}.gate"


def front(site: str, gate: str, verify: str | None = None) -> list[dict[str, Any]]:
    """The handlers that stand before site ``site``'s own, asking the gate at ``gate``
    (``127.0.0.1:PORT``), and its ``/verify`` at ``verify`` when the gate has a listener
    of its own for it (:mod:`tiers.gate.listener`); each has an ``@id`` of its own,
    unique in Caddy's config."""
    strip = {
        "@id": f"tiers-strip-{site}",
        "handler": "headers",
        "request": {"delete": _spellings(IDENTITY_HEADERS)},
    }
    unseal = {
        "@id": f"tiers-token-{site}",
        "handler": "headers",
        "request": {"delete": _spellings(TOKEN_HEADERS)},
    }
    pages = {
        "@id": f"tiers-gate-{site}",
        "handler": "subroute",
        "routes": [
            {
                "match": [{"path": [f"{PREFIX}*"]}],
                "handle": [
                    {
                        "handler": "reverse_proxy",
                        "upstreams": [{"dial": gate}],
                        "load_balancing": RETRY,
                    }
                ],
            }
        ],
    }
    return [strip, pages, _forward_auth(site, verify or gate), unseal, no_gate_cookies(site)]


def no_gate_cookies(site: str) -> dict[str, Any]:
    """The handler taking the gate's cookies out of the ``Cookie`` header the app of site
    ``site`` gets. Every site has it: on this machine all tiers share one host, so a
    browser sends staging's session to production's app too."""
    return {
        "@id": f"tiers-cookies-{site}",
        "handler": "headers",
        "request": {
            "replace": {"Cookie": [{"search_regexp": r, "replace": ""} for r in GATE_COOKIES]}
        },
    }


def _forward_auth(site: str, gate: str) -> dict[str, Any]:
    """Caddy's ``forward_auth GATE { uri /verify; copy_headers ... }``, as ``caddy adapt``
    writes it (Caddy 2.11)."""
    copies: list[dict[str, Any]] = [{"handle": [{"handler": "vars"}]}]
    for name in IDENTITY_HEADERS:
        value = f"{{http.reverse_proxy.header.{name}}}"
        copies.append({"handle": [{"handler": "headers", "request": {"delete": [name]}}]})
        copies.append(
            {
                "handle": [{"handler": "headers", "request": {"set": {name: [value]}}}],
                "match": [{"not": [{"vars": {value: [""]}}]}],
            }
        )
    return {
        "@id": f"tiers-auth-{site}",
        "handler": "reverse_proxy",
        "upstreams": [{"dial": gate}],
        "load_balancing": RETRY,
        "rewrite": {"method": "GET", "uri": "/verify"},
        "headers": {
            "request": {
                "set": {
                    "X-Forwarded-Method": ["{http.request.method}"],
                    "X-Forwarded-Uri": ["{http.request.uri}"],
                }
            }
        },
        "handle_response": [{"match": {"status_code": [2]}, "routes": copies}],
    }


def gate_secrets(project_dir: Path, env: Environment) -> dict[str, str]:
    """The secrets the gate of ``env`` needs (variable → value), decrypted in memory from
    the tier's store: the SMTP password, the GitHub and OIDC client secrets it is
    configured with. PlatformError naming each one without a value."""
    access = env.access
    names = [
        name
        for name in (
            access.smtp.password_secret if access.smtp else None,
            access.github.client_secret if access.github and "github" in access.login else None,
            access.oidc.client_secret if access.oidc and "oidc" in access.login else None,
        )
        if name
    ]
    if not names:
        return {}
    store = Store(project_dir)
    held = store.values(env.name) if store.exists(env.name) else {}
    missing = [name for name in names if name not in held]
    if missing:
        raise PlatformError(
            "; ".join(
                f"the gate needs the secret {name}, which has no value in {env.name}: "
                f"`tiers secrets set {env.name} {name}`"
                for name in missing
            )
        )
    register(held[name] for name in names)
    return {name: held[name] for name in names}


def app_variables(env: Environment, service: str, gate: int | None) -> dict[str, str]:
    """What an app process of ``service`` is told to check the gate's assertion with
    (nothing when no gate runs for ``env``)."""
    if gate is None or not enforced(env):
        return {}
    host = env.services[service].host
    paths = []
    for pattern in env.access.bypass:
        there, _, path = pattern.partition("/")
        if there in ("", host):
            paths.append(f"/{path}")
    return {
        "TIERS_ACCESS_JWKS_URL": f"http://{HOST}:{gate}{PREFIX}certs",
        "TIERS_ACCESS_AUDIENCE": f"{env.name}/{service}",
        "TIERS_ACCESS_ISSUER": f"tiers-gate:{env.name}",
        "TIERS_ACCESS_BYPASS": ",".join(paths),
        "TIERS_ACCESS_PREFLIGHT": env.access.preflight,
    }


class LocalGate:
    """The gate process of each protected environment, under the platform's supervisor.

    >>> gate = LocalGate(platform)                                  # doctest: +SKIP
    >>> gate.ensure(env)              # started (or kept) and answering its health page
    8123
    >>> gate.front(env, "staging-backend")[2]["handler"]
    'reverse_proxy'
    """

    def __init__(self, platform: LocalPlatform) -> None:
        self.platform = platform

    def port(self, env: Environment) -> int | None:
        """The port the gate of ``env`` listens on, once it was given one."""
        return self._ports(env)[0]

    def _ports(self, env: Environment) -> tuple[int | None, int | None]:
        """(pages, /verify): the gate's two ports, kept in ``ENV/gate.port``."""
        try:
            found = [int(p) for p in self._port_file(env).read_text().split()]
        except (OSError, ValueError):
            return None, None
        return (found[0], found[1]) if len(found) == 2 else (None, None)

    def front(self, env: Environment, site: str) -> list[dict[str, Any]]:
        """The handlers for site ``site`` of ``env``: the gate's, or only the one keeping
        the gate's cookies from the app when ``env`` is not protected; PlatformError when
        it is but its gate was never started (a protected site is never served without
        its gate)."""
        if not enforced(env):
            return [no_gate_cookies(site)]
        port, verify = self._ports(env)
        if port is None or verify is None:
            raise PlatformError(f"{site}: the access gate of {env.name} was never started")
        return front(site, f"{HOST}:{port}", f"{HOST}:{verify}")

    def ensure(self, env: Environment) -> bool:
        """Start the gate of ``env`` unless it runs (with the same command) and wait for
        its health page; stop a gate ``env`` no longer needs. True when it started it."""
        supervisor = self.platform.supervisor
        name = process_name(env.name)
        running = {p["name"]: p for p in supervisor.processes()}.get(name)
        if not enforced(env):
            if running is not None:
                supervisor.stop(name)
            return False
        port, verify = self._ports(env)
        alive = running is not None and running["state"] == "running"
        if port is None or verify is None or (not alive and any(map(port_in_use, (port, verify)))):
            port, verify = free_port(), free_port()
            while verify == port:
                verify = free_port()
            self._port_file(env).parent.mkdir(parents=True, exist_ok=True)
            self._port_file(env).write_text(f"{port} {verify}\n", encoding="utf-8")
        command = self._command(env, port, verify)
        # the gate reads its rules once, when it starts: new rules, a new gate
        read = [env.access.model_dump_json(), *sorted(b.url or "" for b in env.services.values())]
        rules = hashlib.sha256("\n".join(read).encode()).hexdigest()
        changed = _read(self._rules_file(env)) != rules
        start = not alive or running is None or running["command"] != command or changed
        if start:
            variables = {**_passed(), **gate_secrets(self.platform.project_dir, env)}
            supervisor.start(
                name, command, cwd=str(self.platform.project_dir), env=variables, restart="always"
            )
            self._rules_file(env).write_text(rules, encoding="utf-8")
        self._wait(env, port)
        return start

    def status(self, env: Environment) -> dict[str, Any] | None:
        """The gate's process state and what its health page answers (None: no gate)."""
        if not enforced(env):
            return None
        port, verify = self._ports(env)
        supervisor = self.platform.supervisor
        processes = supervisor.processes() if supervisor.alive() else []
        found = {p["name"]: p for p in processes}.get(process_name(env.name))
        state = found["state"] if found else "not running"
        healthy = port is not None and state == "running" and http_ok(self._health(port))
        return {
            "state": state,
            "address": f"{HOST}:{port}" if port else None,
            "verify": f"{HOST}:{verify}" if verify else None,
            "healthy": healthy,
            "answer": "answers" if healthy else "does not answer",
        }

    def _wait(self, env: Environment, port: int) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        name = process_name(env.name)
        while not http_ok(self._health(port)):
            found = {p["name"]: p for p in self.platform.supervisor.processes()}.get(name)
            if found is None or found["restarts"] or found["state"] != "running":
                raise PlatformError(f"the access gate exited on start{self._tail(name)}")
            if time.monotonic() > deadline:
                raise PlatformError(
                    f"the access gate did not answer {self._health(port)} within "
                    f"{START_TIMEOUT:g}s{self._tail(name)}"
                )
            time.sleep(_POLL)

    def _tail(self, name: str) -> str:
        lines = self.platform.supervisor.logs(name, _LOG_LINES)
        return "; its log ends:\n" + "\n".join(lines) if lines else ""

    def _command(self, env: Environment, port: int, verify: int) -> str:
        config = self.platform.project_dir / "tiers.toml"
        return (
            f"{shlex.quote(sys.executable)} -m tiers gate serve {shlex.quote(env.name)} "
            f"-c {shlex.quote(str(config))} --listen {HOST}:{port} "
            f"--verify-listen {HOST}:{verify}"
        )

    def _health(self, port: int) -> str:
        return f"http://{HOST}:{port}{PREFIX}health"

    def _port_file(self, env: Environment) -> Path:
        return self.platform.env_dir(env) / "gate.port"

    def _rules_file(self, env: Environment) -> Path:
        return self.platform.env_dir(env) / "gate.rules"


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except OSError:
        return None


def _passed() -> dict[str, str]:
    """What the gate takes from whoever ran tiers: it is tiers itself, so PATH, HOME, the
    locale and tiers' own settings (``TIERS_*``: the state store among them)."""
    keep = ("PATH", "HOME", "LANG", "LC_ALL", "TZ")
    return {k: v for k, v in os.environ.items() if k in keep or k.startswith("TIERS_")}
