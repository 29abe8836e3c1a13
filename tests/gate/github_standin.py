"""A stand-in for GitHub that speaks its OAuth web flow and the REST endpoints the gate
reads, on a real local port (GitHub itself cannot be reached from the tests).

It behaves as GitHub documents: the authorize page (a consent page with Authorize and
Cancel), ``POST /login/oauth/access_token`` (client credentials checked, codes single
use and tied to their redirect URI, errors as ``200 {"error": …}``, JSON or form answers
by ``Accept``), and, under ``/api/v3`` as on GitHub Enterprise, ``/user``,
``/user/emails``, ``/user/orgs`` and ``/user/teams`` (a token in ``Authorization: Bearer``
or ``token``, scopes enforced, pages of ``per_page`` with ``Link: rel="next"``, orgs
that restrict OAuth apps left out).

Example::

    with GitHubStandIn(users=[User("alice", emails=[Email("alice@plyr.fm")])]) as hub:
        cfg = hub.config()
        redirect = hub.approve(authorize_url(cfg, hub.callback, "s1"), "alice")
"""

from __future__ import annotations

import html
import json
import secrets
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import httpx

from tiers.config.model import GitHubLogin

KNOWN_SCOPES = {"read:user", "user:email", "read:org", "user", "repo"}


@dataclass
class Email:
    address: str
    verified: bool = True
    primary: bool = True


@dataclass
class User:
    login: str
    emails: list[Email] = field(default_factory=list)
    orgs: list[str] = field(default_factory=list)
    teams: list[str] = field(default_factory=list)
    """``Org/team-slug``, as GitHub spells them."""
    name: str = ""


@dataclass
class _Code:
    client_id: str
    redirect_uri: str
    login: str
    scopes: list[str]


class GitHubStandIn:
    """GitHub on ``127.0.0.1:<free port>`` with one OAuth app and ``users``."""

    def __init__(
        self,
        users: list[User],
        *,
        client_id: str = "Iv1.standin",
        client_secret: str = "standin-secret",
        callback: str = "http://127.0.0.1:9/.tiers/access/github/callback",
        restricted_orgs: tuple[str, ...] = (),
        max_per_page: int = 100,
    ) -> None:
        self.users = {u.login.lower(): u for u in users}
        self.client_id = client_id
        self.client_secret = client_secret
        self.callback = callback
        """The OAuth app's authorization callback URL (a redirect_uri must be under it)."""
        self.restricted_orgs = {o.lower() for o in restricted_orgs}
        """Orgs with OAuth app access restrictions that have not approved this app."""
        self.max_per_page = max_per_page
        self._codes: dict[str, _Code] = {}
        self._tokens: dict[str, tuple[str, list[str]]] = {}
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self.api_url = f"{self.url}/api/v3"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def __enter__(self) -> GitHubStandIn:
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def stop(self) -> None:
        """Stop answering (and free the port): GitHub is down from now on."""
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join()
        self._server.server_close()

    def config(self, **changes: str) -> GitHubLogin:
        """The ``access.github`` table that points the gate at this stand-in."""
        values = {"client_id": self.client_id, "url": self.url, "api_url": self.api_url}
        return GitHubLogin(**{**values, **changes})

    # What a person does in the browser, through the stand-in's own pages.

    def approve(self, authorize_url: str, login: str, *, withhold: str = "") -> dict[str, str]:
        """Open ``authorize_url``, sign in as ``login`` and press Authorize (having edited
        away the scopes in ``withhold``, as GitHub lets people do): the query GitHub sends
        back to the callback."""
        return self._decide(authorize_url, login, "allow", withhold)

    def deny(self, authorize_url: str, login: str) -> dict[str, str]:
        """Open ``authorize_url`` and press Cancel: the query sent back to the callback."""
        return self._decide(authorize_url, login, "deny")

    def _decide(
        self, authorize_url: str, login: str, decision: str, withhold: str = ""
    ) -> dict[str, str]:
        with httpx.Client(timeout=10) as browser:
            page = browser.get(authorize_url)
            assert page.status_code == 200, page.text
            assert "Authorize" in page.text
            form = dict(parse_qsl(urlsplit(authorize_url).query))
            answer = browser.post(
                f"{self.url}/login/oauth/authorize",
                data={**form, "login": login, "decision": decision, "withhold": withhold},
            )
        assert answer.status_code == 302, answer.text
        location = answer.headers["location"]
        assert location.startswith(form["redirect_uri"])
        return dict(parse_qsl(urlsplit(location).query))

    # The protocol.

    def authorize_page(self, query: dict[str, str]) -> tuple[int, dict[str, str], str]:
        if query.get("client_id") != self.client_id:
            return 404, {}, "<h1>404</h1><p>This OAuth app does not exist.</p>"
        redirect_uri = query.get("redirect_uri", self.callback)
        if not self._redirect_ok(redirect_uri):
            params = {
                "error": "redirect_uri_mismatch",
                "error_description": "The redirect_uri MUST match the registered callback "
                "URL for this application.",
                "state": query.get("state", ""),
            }
            return 302, {"Location": f"{self.callback}?{urlencode(params)}"}, ""
        hidden = "".join(
            f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}">'
            for k, v in query.items()
        )
        logins = "".join(f"<option>{html.escape(u.login)}</option>" for u in self.users.values())
        body = (
            "<!doctype html><title>Authorize application</title>"
            "<h1>Authorize the tiers gate</h1>"
            f"<p>It asks for: {html.escape(query.get('scope', ''))}</p>"
            '<form method="post" action="/login/oauth/authorize">'
            f'{hidden}<label>Signed in as <select name="login">{logins}</select></label>'
            '<button name="decision" value="allow">Authorize</button>'
            '<button name="decision" value="deny">Cancel</button></form>'
        )
        return 200, {"Content-Type": "text/html; charset=utf-8"}, body

    def authorize_decision(self, form: dict[str, str]) -> tuple[int, dict[str, str], str]:
        if form.get("client_id") != self.client_id:
            return 404, {}, "This OAuth app does not exist."
        redirect_uri = form.get("redirect_uri", self.callback)
        if not self._redirect_ok(redirect_uri):
            return 400, {}, "redirect_uri mismatch"
        state = form.get("state", "")
        if form.get("decision") != "allow":
            params = {
                "error": "access_denied",
                "error_description": "The user has denied your application access.",
                "error_uri": "https://docs.github.com/apps/troubleshooting-authorization-"
                "request-errors/#access-denied",
                "state": state,
            }
            return 302, {"Location": _with_query(redirect_uri, params)}, ""
        login = form.get("login", "").lower()
        if login not in self.users:
            return 200, {}, "Incorrect username or password."
        withheld = form.get("withhold", "").split()
        asked = form.get("scope", "").replace(",", " ").split()
        scopes = [s for s in asked if s in KNOWN_SCOPES and s not in withheld]
        code = secrets.token_hex(10)
        with self._lock:
            self._codes[code] = _Code(self.client_id, redirect_uri, login, scopes)
        params = {"code": code, "state": state}
        return 302, {"Location": _with_query(redirect_uri, params)}, ""

    def access_token(self, form: dict[str, str], accept: str) -> tuple[int, dict[str, str], str]:
        answer: dict[str, str]
        if form.get("client_id") != self.client_id or not secrets.compare_digest(
            form.get("client_secret", ""), self.client_secret
        ):
            answer = {
                "error": "incorrect_client_credentials",
                "error_description": "The client_id and/or client_secret passed are incorrect.",
            }
        else:
            with self._lock:
                code = self._codes.pop(form.get("code", ""), None)  # single use
            if code is None or code.client_id != form.get("client_id"):
                answer = {
                    "error": "bad_verification_code",
                    "error_description": "The code passed is incorrect or expired.",
                }
            elif form.get("redirect_uri", code.redirect_uri) != code.redirect_uri:
                answer = {
                    "error": "redirect_uri_mismatch",
                    "error_description": "The redirect_uri MUST match the registered "
                    "callback URL for this application.",
                }
            else:
                token = "gho_" + secrets.token_hex(18)
                with self._lock:
                    self._tokens[token] = (code.login, code.scopes)
                answer = {
                    "access_token": token,
                    "scope": ",".join(sorted(code.scopes)),
                    "token_type": "bearer",
                }
        if "application/json" in accept:
            return 200, {"Content-Type": "application/json"}, json.dumps(answer)
        return 200, {"Content-Type": "application/x-www-form-urlencoded"}, urlencode(answer)

    def api(self, path: str, query: dict[str, str], authorization: str) -> tuple[int, Any, str]:
        """(status, JSON body, Link header) of an API GET."""
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() not in {"bearer", "token"} or not token:
            return 401, {"message": "Requires authentication"}, ""
        with self._lock:
            grant = self._tokens.get(token)
        if grant is None:
            return 401, {"message": "Bad credentials"}, ""
        user, scopes = self.users[grant[0]], set(grant[1])
        if path == "/user":
            return 200, _user_json(user), ""
        if path == "/user/emails":
            if not scopes & {"user", "user:email"}:
                return 404, {"message": "Not Found"}, ""
            return self._page(path, query, [_email_json(e) for e in user.emails])
        if path in {"/user/orgs", "/user/teams"}:
            if not scopes & {"user", "read:org", "repo"}:
                return 403, {"message": "You need at least read:org scope or user scope"}, ""
            if path == "/user/orgs":
                orgs = [o for o in user.orgs if o.lower() not in self.restricted_orgs]
                return self._page(path, query, [_org_json(o) for o in orgs])
            teams = [t for t in user.teams if t.split("/")[0].lower() not in self.restricted_orgs]
            return self._page(path, query, [_team_json(t) for t in teams])
        return 404, {"message": "Not Found"}, ""

    def _page(self, path: str, query: dict[str, str], items: list[Any]) -> tuple[int, Any, str]:
        size = min(int(query.get("per_page", "30")), self.max_per_page)
        number = int(query.get("page", "1"))
        chunk = items[(number - 1) * size : number * size]
        last = max(1, -(-len(items) // size))
        links = []
        if number < last:
            links.append(f'<{self.api_url}{path}?per_page={size}&page={number + 1}>; rel="next"')
            links.append(f'<{self.api_url}{path}?per_page={size}&page={last}>; rel="last"')
        return 200, chunk, ", ".join(links)

    def _redirect_ok(self, redirect_uri: str) -> bool:
        """GitHub's rule: same scheme, host and port as the callback URL, and a path
        under its path."""
        given, registered = urlsplit(redirect_uri), urlsplit(self.callback)
        return (given.scheme, given.netloc) == (registered.scheme, registered.netloc) and (
            given.path.startswith(registered.path)
        )


def _with_query(url: str, params: dict[str, str]) -> str:
    return f"{url}{'&' if '?' in url else '?'}{urlencode(params)}"


def _user_json(user: User) -> dict[str, Any]:
    number = abs(hash(user.login)) % 10**7
    public = next((e.address for e in user.emails if e.primary and e.verified), None)
    return {
        "login": user.login,
        "id": number,
        "node_id": f"U_{number}",
        "type": "User",
        "site_admin": False,
        "name": user.name or user.login,
        "email": public,
    }


def _email_json(email: Email) -> dict[str, Any]:
    return {
        "email": email.address,
        "primary": email.primary,
        "verified": email.verified,
        "visibility": "private" if email.primary else None,
    }


def _org_json(login: str) -> dict[str, Any]:
    return {"login": login, "id": abs(hash(login)) % 10**7, "description": ""}


def _team_json(name: str) -> dict[str, Any]:
    org, slug = name.split("/")
    return {
        "name": slug.replace("-", " ").title(),
        "slug": slug,
        "privacy": "closed",
        "organization": _org_json(org),
    }


def _handler(hub: GitHubStandIn) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass  # quiet in the test output

        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            query = dict(parse_qsl(parts.query))
            if parts.path == "/login/oauth/authorize":
                self._send(*hub.authorize_page(query))
            elif parts.path.startswith("/api/v3/"):
                status, body, link = hub.api(
                    parts.path.removeprefix("/api/v3"),
                    query,
                    self.headers.get("Authorization", ""),
                )
                headers = {"Content-Type": "application/json; charset=utf-8"}
                if link:
                    headers["Link"] = link
                self._send(status, headers, json.dumps(body))
            else:
                self._send(404, {}, "Not Found")

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            raw = self.rfile.read(length).decode()
            if self.headers.get("Content-Type", "").startswith("application/json"):
                form = {k: str(v) for k, v in json.loads(raw or "{}").items()}
            else:
                form = dict(parse_qsl(raw))
            path = urlsplit(self.path).path
            if path == "/login/oauth/authorize":
                self._send(*hub.authorize_decision(form))
            elif path == "/login/oauth/access_token":
                self._send(*hub.access_token(form, self.headers.get("Accept", "")))
            else:
                self._send(404, {}, "Not Found")

        def _send(self, status: int, headers: dict[str, str], body: str) -> None:
            data = body.encode()
            self.send_response(status)
            headers.setdefault("Content-Type", "text/plain; charset=utf-8")
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    return Handler
