"""``tiers access doctor ENV``: probe a running protected environment from outside.

What a new user checks by hand with curl, done for every host and rule (the seed's
"debugging access issues", made a command). Each probe is one anonymous HTTP request,
sent without cookies, without following redirects and never through a proxy:

- each protected host's root, a path no bypass rule matches, and an anonymous write
  (``POST``) answer with the login (a 302 to ``/.tiers/access/login``, or a 401 or 403),
  never the app; so does a request carrying forged identity headers;
- each bypass path answers without it (2xx or 3xx not to the login; a ``/prefix/*``
  rule is probed at its prefix, where the app may also say 404);
- the gate's login page answers on each host;
- nothing reaches the app around the gate: a public ``platform_url`` answers with the
  login too, and the app's own port on the local platform (127.0.0.1:PORT, where Caddy
  sends the traffic) refuses a request that has not been through the gate (401/403) or
  does not accept one at all.

>>> report = diagnose(config, Path("."), "staging")                 # doctest: +SKIP
>>> [p.line() for p in report.probes][0]
'pass  GET http://localhost:8002/ (protected host root): 302 to the login page'
"""

from __future__ import annotations

import http.client
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from tiers.config import Config, Environment
from tiers.errors import UsageError

__all__ = ["Probe", "Report", "diagnose", "probes", "send"]

LOGIN = "/.tiers/access/login"
PROBE_PATH = "/.well-known/tiers-access-doctor"
"""A path no app serves and no sane bypass rule names: the gate must guard it."""
FORGED = {
    "Tiers-Access-Identity": "doctor@example.com",
    "Tiers-Access-Jwt-Assertion": "eyJhbGciOiJub25lIn0.eyJzdWIiOiJkb2N0b3IifQ.",
}
TIMEOUT = 10.0

# what each kind of probe expects: the login, no login, the gate's page, or a refusal
GUARDED, OPEN, PREFIX, PAGE, DIRECT = "login", "open", "open-prefix", "page", "refused"
_EXPECT = {
    GUARDED: "the login (302 to the login page, 401 or 403)",
    OPEN: "an answer without login (2xx or 3xx, not to the login)",
    PREFIX: "an answer without login (not the login, not a server error)",
    PAGE: "the gate's login page (200)",
    DIRECT: "a refusal (401 or 403) or no connection",
}


@dataclass
class Probe:
    """One request and what it must get; ``status`` and ``said`` once it was sent."""

    what: str
    method: str
    url: str
    expect: str
    headers: dict[str, str]
    status: int | None = None
    location: str | None = None
    said: str = ""
    ok: bool = False

    def line(self) -> str:
        mark = "pass" if self.ok else "FAIL"
        return f"{mark}  {self.method} {self.url} ({self.what}): {self.said}"

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["expect"] = _EXPECT[self.expect]
        del out["headers"]
        return out


@dataclass
class Report:
    environment: str
    probes: list[Probe]

    @property
    def ok(self) -> bool:
        return all(p.ok for p in self.probes)

    def to_json(self) -> dict[str, Any]:
        return {
            "environment": self.environment,
            "ok": self.ok,
            "probes": [p.to_json() for p in self.probes],
        }


def probes(env: Environment, direct: dict[str, str]) -> list[Probe]:
    """Every probe of ``env``: its hosts, its bypass rules, its gate's page and ``direct``
    (service → ``http://127.0.0.1:PORT``, where its app listens around the gate)."""
    out: list[Probe] = []
    for service, binding in env.services.items():
        if not binding.url:
            continue
        base = binding.url.rstrip("/")
        host = urlsplit(base).netloc.lower()
        out += [
            Probe("protected host root", "GET", f"{base}/", GUARDED, {}),
            Probe("a path no bypass rule names", "GET", f"{base}{PROBE_PATH}", GUARDED, {}),
            Probe("an anonymous write", "POST", f"{base}/", GUARDED, {}),
            Probe("forged identity headers", "GET", f"{base}{PROBE_PATH}", GUARDED, FORGED),
        ]
        for pattern in env.access.bypass:
            there, _, path = pattern.partition("/")
            if there not in ("", host):
                continue
            if path.endswith("*"):
                what = f"bypass {pattern}"
                out.append(Probe(what, "GET", f"{base}/{path[:-1]}", PREFIX, {}))
            else:
                out.append(Probe(f"bypass {pattern}", "GET", f"{base}/{path}", OPEN, {}))
        out.append(Probe("the gate's login page", "GET", f"{base}{LOGIN}", PAGE, {}))
        if binding.platform_url:
            around = binding.platform_url.rstrip("/")
            out.append(Probe(f"{service}'s platform address", "GET", f"{around}/", GUARDED, {}))
    for service, address in direct.items():
        out += [
            Probe(f"{service}'s own port", "GET", f"{address}/", DIRECT, {}),
            Probe(f"{service}'s own port", "GET", f"{address}{PROBE_PATH}", DIRECT, FORGED),
        ]
    return out


def send(probe: Probe) -> Probe:
    """Send ``probe`` and judge its answer (in place; returned for convenience)."""
    parts = urlsplit(probe.url)
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    connection = (
        http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    )
    conn = connection(parts.hostname or "", parts.port, timeout=TIMEOUT)
    body = b"" if probe.method == "POST" else None
    try:
        conn.request(probe.method, path or "/", body=body, headers=probe.headers)
        response = conn.getresponse()
        response.read()
        probe.status, probe.location = response.status, response.getheader("Location")
    except (OSError, http.client.HTTPException) as exc:
        probe.said = f"no answer ({getattr(exc, 'strerror', None) or exc})"
        probe.ok = probe.expect == DIRECT
        return probe
    finally:
        conn.close()
    probe.ok, probe.said = _judge(probe)
    return probe


def _judge(probe: Probe) -> tuple[bool, str]:
    status, location = probe.status or 0, probe.location or ""
    to_login = 300 <= status < 400 and LOGIN in location
    answered = f"{status}" + (f" to {location}" if location else "")
    if to_login:
        answered = f"{status} to the login page"
    if probe.expect == GUARDED:
        ok = to_login or status in (401, 403)
        return ok, answered if ok else f"{answered}: the app answered without login"
    if probe.expect == OPEN:
        ok = 200 <= status < 400 and not to_login
        return ok, answered if ok else f"{answered}: a public path asks for login"
    if probe.expect == PREFIX:
        ok = not to_login and status not in (401, 403) and status < 500
        return ok, answered if ok else f"{answered}: a public path asks for login"
    if probe.expect == PAGE:
        ok = status == 200
        return ok, answered if ok else f"{answered}: the gate's page does not answer"
    ok = status in (401, 403)
    return ok, answered if ok else f"{answered}: the app answers around the gate"


def diagnose(config: Config, project_dir: Path, environment: str) -> Report:
    """Probe ``environment`` as it runs now (see the module's documentation)."""
    env = config.environments.get(environment)
    if env is None:
        known = ", ".join(config.environments)
        raise UsageError(f"no environment {environment!r}; known: {known}")
    if not env.access.protect:
        raise UsageError(
            f"{environment} is not protected: there is no gate to probe (set "
            f"[environments.{environment}.access] protect = true)"
        )
    if not any(b.url for b in env.services.values()):
        raise UsageError(f"{environment} has no service with a url to probe")
    report = Report(environment, probes(env, _direct(config, project_dir, env)))
    for probe in report.probes:
        send(probe)
    return report


def _direct(config: Config, project_dir: Path, env: Environment) -> dict[str, str]:
    """Where each app of ``env`` on the local platform listens itself (127.0.0.1:PORT)."""
    from tiers.platforms.base import Platforms

    live = Platforms(config, project_dir).live(env)
    return {
        service: f"http://127.0.0.1:{instance.port}"
        for service, instance in live.items()
        if instance.port is not None and env.services[service].platform == "local"
    }
