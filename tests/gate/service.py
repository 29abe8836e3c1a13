"""For the gate service's tests: a project with two protected tiers, and their gates run
by the real `tiers gate serve`.

The tests talk to the gate as Caddy does: ``/verify`` with X-Forwarded-* headers, and
the ``/.tiers/access/*`` pages with the site's host in X-Forwarded-Host. Cookies are
carried by hand (:class:`Browser`), per site host, as a browser keeps host-only cookies.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any

import httpx

from tests.pipeline.example import reserved_ports

CONFIG = """
[project]
name = "plyr"

[services.backend]
kind = "api"
health = "/health"

[services.frontend]
kind = "frontend"
output = "frontend"

[environments.staging]
trigger = {{ push = "main" }}

[environments.staging.backend]
platform = "local"
url = "{staging_api}"

[environments.staging.frontend]
platform = "local"
url = "{staging_web}"

[environments.staging.access]
protect = true
allow = ["email-domain:plyr.fm", "email:guest@elsewhere.example"]
bypass = ["{staging_api_host}/health"]
preflight = "{preflight}"
{smtp}
{login}

[environments.production]
trigger = {{ release = "tag" }}

[environments.production.backend]
platform = "local"
url = "http://localhost:8003"

[environments.production.access]
protect = true
login = ["otp"]
allow = ["email-domain:plyr.fm"]
"""

STAGING_API = "localhost:8002"
STAGING_WEB = "localhost:5174"


def write_config(
    folder: Path,
    *,
    smtp_port: int | None = None,
    preflight: str = "origin",
    api: str = f"http://{STAGING_API}",
    web: str = f"http://{STAGING_WEB}",
    extra: str = "",
) -> Path:
    """``extra``: more lines for staging's access table (``github = {…}``, ``login``)."""
    smtp = extra
    if smtp_port is not None:
        smtp += (
            f'smtp = {{ host = "127.0.0.1", port = {smtp_port}, sender = "gate@plyr.fm", '
            'tls = "none" }'
        )
    api_host = api.split("://", 1)[1]
    text = CONFIG.format(
        staging_api=api,
        staging_web=web,
        staging_api_host=api_host,
        preflight=preflight,
        smtp=smtp,
        login="" if "login =" in extra else 'login = ["otp"]',
    )
    path = folder / "tiers.toml"
    path.write_text(text)
    return path


def tiers_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tiers", *args], cwd=cwd, capture_output=True, text=True, check=False
    )


@dataclass
class Gate:
    """A running ``tiers gate serve``: its pages (and ``/verify``) at ``url``, and its
    ``--verify-listen`` listener at ``verify_url``."""

    url: str
    verify_url: str
    project: Path
    environment: str
    process: subprocess.Popen[str]

    def client(self, *, listener: bool = False) -> httpx.Client:
        base = self.verify_url if listener else self.url
        return httpx.Client(base_url=base, follow_redirects=False, timeout=10)

    def claims(self, allowed: httpx.Response, audience: str) -> dict[str, Any]:
        """The identity assertion on an allowed /verify answer, checked against the gate's
        own JWKS as an origin would check it."""
        from tiers.gate.assertion import verify

        with self.client() as client:
            jwks = client.get("/.tiers/access/certs").json()
        return verify(
            allowed.headers["tiers-access-jwt-assertion"],
            jwks,
            audience=audience,
            issuer=f"tiers-gate:{self.environment}",
        )


@contextlib.contextmanager
def running_gate(
    project: Path, environment: str = "staging", env: dict[str, str] | None = None
) -> Iterator[Gate]:
    with reserved_ports(2) as (port, verify):
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tiers",
                "gate",
                "serve",
                environment,
                "--listen",
                f"127.0.0.1:{port}",
                "--verify-listen",
                f"127.0.0.1:{verify}",
            ],
            cwd=project,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
        )
        url = f"http://127.0.0.1:{port}"
        try:
            _wait(url, process)
            yield Gate(url, f"http://127.0.0.1:{verify}", project, environment, process)
        finally:
            process.terminate()
            try:
                process.communicate(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.communicate()


def _wait(url: str, process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            _, err = process.communicate()
            raise AssertionError(f"the gate exited: {err}")
        try:
            if httpx.get(f"{url}/.tiers/access/health", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise AssertionError("the gate did not answer")


_SAID = ("location", "content-type", "cache-control", "tiers-access-identity")


def same_answer(one: httpx.Response, other: httpx.Response) -> bool:
    """Whether two /verify answers say the same (status, body, the headers that mean
    something; both or neither carrying an assertion)."""
    return (
        one.status_code == other.status_code
        and one.content == other.content
        and all(one.headers.get(name) == other.headers.get(name) for name in _SAID)
        and ("tiers-access-jwt-assertion" in one.headers)
        == ("tiers-access-jwt-assertion" in other.headers)
    )


def eventually(probe: Callable[[], Any], what: str) -> Any:
    """Wait (up to 15 s) for ``probe`` to return something true: not a timed assertion,
    only patience for work the gate does in the background (mail, cache reloads)."""
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        found = probe()
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError(f"never happened: {what}")


@dataclass
class Browser:
    """A browser's view: host-only cookies per host (ports ignored), requests through the
    gate as Caddy would send them."""

    gate: Gate
    scheme: str = "http"
    client_ip: str = "127.0.0.1"
    cookies: dict[str, dict[str, str]] = field(default_factory=dict)

    def _jar(self, host: str) -> dict[str, str]:
        return self.cookies.setdefault(host.rsplit(":", 1)[0], {})

    def _keep(self, host: str, response: httpx.Response) -> None:
        for header in response.headers.get_list("set-cookie"):
            parsed = SimpleCookie()
            parsed.load(header)
            for name, morsel in parsed.items():
                if morsel["max-age"] == "0" or morsel.value == "":
                    self._jar(host).pop(name, None)
                else:
                    self._jar(host)[name] = morsel.value

    def _headers(self, host: str, extra: dict[str, str] | None) -> dict[str, str]:
        jar = self._jar(host)
        headers = {
            "X-Forwarded-Host": host,
            "X-Forwarded-Proto": self.scheme,
            "X-Forwarded-For": self.client_ip,
            "Accept": "text/html",
        }
        if jar:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in jar.items())
        return {**headers, **(extra or {})}

    def page(
        self, host: str, path: str, data: dict[str, str] | None = None, **kw: Any
    ) -> httpx.Response:
        with self.gate.client() as client:
            headers = self._headers(host, kw.pop("headers", None))
            if data is None:
                response = client.get(path, headers=headers, **kw)
            else:
                response = client.post(path, data=data, headers=headers, **kw)
        self._keep(host, response)
        return response

    def verify(self, host: str, uri: str, method: str = "GET", **extra: str) -> httpx.Response:
        """The gate's answer to Caddy asking about ``method host uri``: asked of both of
        its ``/verify`` listeners, which must give the same answer."""
        headers = self._headers(
            host, {"X-Forwarded-Method": method, "X-Forwarded-Uri": uri, **extra}
        )
        with self.gate.client() as pages, self.gate.client(listener=True) as listener:
            answers = [c.get("/verify", headers=headers) for c in (pages, listener)]
        assert same_answer(*answers), f"the two /verify listeners disagree: {answers}"
        return answers[1]

    def follow(self, response: httpx.Response, host: str) -> tuple[httpx.Response, str]:
        """Follow redirects the way a browser would, across the environment's hosts."""
        for _ in range(10):
            if response.status_code not in (302, 303):
                return response, host
            location = response.headers["location"]
            if "://" in location:
                rest = location.split("://", 1)[1]
                host, _, path = rest.partition("/")
                path = "/" + path
            else:
                path = location
            if not path.startswith("/.tiers/access/"):
                return response, host  # back at the app: Caddy would serve it
            response = self.page(host, path)
        raise AssertionError("redirect loop")
