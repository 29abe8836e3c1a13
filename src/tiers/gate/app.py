"""The gate as an ASGI app: ``/verify`` for Caddy, the login pages for people.

``/verify`` is :mod:`tiers.gate.verify` (plain ASGI: it is on every request's path).
Everything else is Starlette, under ``/.tiers/access/``, which Caddy routes on each
protected site straight here, unauthenticated:

- ``login`` (GET: the page, which clears the old session cookie; POST: send a PIN),
  ``code`` (GET: "code sent" and the PIN field; POST: check it and sign in);
- ``logout`` (GET: confirm; POST: revoke the session server-side, clear the cookie);
- ``session?ticket=…``: the hop that sets the host-only cookie on the environment's
  other hosts after a login (see :mod:`tiers.gate.sessions`);
- ``certs`` (the JWKS of the assertion keys), ``health``;
- ``github/start``, ``github/callback``, ``oidc/start``, ``oidc/callback``
  (:mod:`tiers.gate.oauth`).

Return URLs are only ever relative paths on the host the login happened on
(:mod:`tiers.gate.returns`).
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from jinja2 import Environment as Templates
from jinja2 import FileSystemLoader, select_autoescape
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import (
    HTMLResponse,
    JSONResponse,
    RedirectResponse,
    Response,
)
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from tiers.config import Config
from tiers.gate.core import Gate, Site
from tiers.gate.identity import Identity
from tiers.gate.returns import safe_return
from tiers.gate.sessions import cookie_attributes, cookie_name, secure_cookie
from tiers.gate.store import now
from tiers.gate.verify import ASSERTION_HEADER, IDENTITY_HEADER, Verifier
from tiers.state import StateStore

__all__ = ["ASSERTION_HEADER", "IDENTITY_HEADER", "PREFIX", "GateASGI", "make_app"]

PREFIX = "/.tiers/access"
REFRESH_SECONDS = 1.0
FLOW_SECONDS = 600
_PAGES = Templates(
    loader=FileSystemLoader(Path(__file__).parent / "pages"),
    autoescape=select_autoescape(default=True),
)
NO_STORE = {"Cache-Control": "no-store"}


def make_app(config: Config, environment: str, state: StateStore, state_dir: Path) -> GateASGI:
    """The gate of ``environment`` (which must be protected by tiers), keeping its
    sessions and events in ``state`` and its keys under ``state_dir/gate/ENV``."""
    gate = Gate(config, environment, state, state_dir)
    gate.refresh()
    pages = GateApp(gate)
    return GateASGI(Verifier(gate, pages.denied), pages.starlette())


class GateASGI:
    """``/verify`` straight to the plain-ASGI verifier; everything else to Starlette.
    ``verifier`` is also what :mod:`tiers.gate.listener` answers with."""

    def __init__(self, verifier: Verifier, pages: Starlette) -> None:
        self.verifier = verifier
        self.pages = pages

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == "/verify":
            await self.verifier(scope, receive, send)
        else:
            await self.pages(scope, receive, send)


def client_address(request: Request) -> str:
    """The client's address: the last X-Forwarded-For entry is the one Caddy added."""
    forwarded = request.headers.get("x-forwarded-for")
    if forwarded:
        return forwarded.rsplit(",", 1)[-1].strip()[:100]
    return request.client.host if request.client else "unknown"


class GateApp:
    """The pages and the login routes of one gate, as a Starlette app."""

    def __init__(self, gate: Gate) -> None:
        self.gate = gate
        self.access = gate.env.access

    def starlette(self) -> Starlette:
        from tiers.gate.oauth import OAuthRoutes

        oauth = OAuthRoutes(self)
        routes = [
            Route(f"{PREFIX}/login", self.login, methods=["GET"]),
            Route(f"{PREFIX}/login", self.send_code, methods=["POST"]),
            Route(f"{PREFIX}/code", self.code_page, methods=["GET"]),
            Route(f"{PREFIX}/code", self.enter_code, methods=["POST"]),
            Route(f"{PREFIX}/logout", self.logout, methods=["GET", "POST"]),
            Route(f"{PREFIX}/session", self.session_hop, methods=["GET"]),
            Route(f"{PREFIX}/certs", self.certs, methods=["GET"]),
            Route(f"{PREFIX}/health", self.health, methods=["GET"]),
            Route(f"{PREFIX}/{{provider:str}}/start", oauth.start, methods=["GET"]),
            Route(f"{PREFIX}/{{provider:str}}/callback", oauth.callback, methods=["GET"]),
        ]
        return Starlette(routes=routes, lifespan=self.lifespan)

    @contextlib.asynccontextmanager
    async def lifespan(self, _app: Starlette) -> AsyncIterator[None]:
        task = asyncio.create_task(self._refresh_loop())
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await run_in_threadpool(self._refresh_quietly)  # the last token uses

    async def _refresh_loop(self) -> None:
        while True:
            await asyncio.sleep(REFRESH_SECONDS)
            await run_in_threadpool(self._refresh_quietly)

    def _refresh_quietly(self) -> None:
        # A state store that does not answer for a moment must not stop the gate; it
        # keeps deciding on what it loaded last.
        try:
            self.gate.refresh()
        except Exception as exc:
            print(
                f"tiers gate {self.gate.name}: cannot refresh from the state store: {exc}",
                file=sys.stderr,
            )

    # -- pages -------------------------------------------------------------------------------

    def page(self, name: str, status: int = 200, **context: Any) -> HTMLResponse:
        template = _PAGES.get_template(f"{name}.html")
        body = template.render(project=self.gate.project, environment=self.gate.name, **context)
        return HTMLResponse(body, status_code=status, headers=NO_STORE)

    def denied(self, who: str) -> str:
        """The body of the "signed in, but not allowed" page."""
        return bytes(self.page("denied", 403, who=who).body).decode()

    def error(self, heading: str, message: str, status: int, return_to: str = "/") -> HTMLResponse:
        return self.page(
            "error", status, heading=heading, message=message, error=True, return_to=return_to
        )

    # -- /verify ------------------------------------------------------------------------------

    # -- the current site of a page request ---------------------------------------------------

    def here(self, request: Request) -> tuple[Site, bool] | None:
        scheme = request.headers.get("x-forwarded-proto", request.url.scheme).lower()
        host = request.headers.get("x-forwarded-host") or request.headers.get("host", "")
        site = self.gate.site(host, scheme)
        if site is None:
            return None
        return site, secure_cookie(scheme, site.host)

    def not_here(self) -> HTMLResponse:
        return self.error("Unknown site", f"This address is not one of {self.gate.name}'s.", 400)

    def _cookie(self, secure: bool) -> str:
        return cookie_name(self.gate.name, secure)

    def _flow(self, secure: bool) -> str:
        return cookie_name(self.gate.name, secure, "login")

    def clear_cookie(self, response: Response, name: str, secure: bool) -> None:
        response.delete_cookie(name, path="/", secure=secure, httponly=True, samesite="lax")

    # -- email one-time PIN -------------------------------------------------------------------

    async def login(self, request: Request) -> Response:
        here = self.here(request)
        if here is None:
            return self.not_here()
        _site, secure = here
        return_to = safe_return(request.query_params.get("return"))
        response = self.login_page(return_to)
        self.clear_cookie(response, self._cookie(secure), secure)  # a sign-in starts signed out
        return response

    def login_page(self, return_to: str, status: int = 200, **context: Any) -> HTMLResponse:
        oidc = "single sign-on" if "oidc" in self.access.login and self.access.oidc else None
        return self.page(
            "login",
            status,
            return_to=return_to,
            otp="otp" in self.access.login,
            github="github" in self.access.login and self.access.github is not None,
            oidc=oidc,
            email=context.pop("email", ""),
            **context,
        )

    async def send_code(self, request: Request) -> Response:
        here = self.here(request)
        if here is None:
            return self.not_here()
        _site, secure = here
        form = await request.form()
        return_to = safe_return(str(form.get("return") or ""))
        if "otp" not in self.access.login:
            return self.error(
                "Not available", "Email codes are not a sign-in method here.", 404, return_to
            )
        from tiers.gate.otp import valid_address

        typed = str(form.get("email") or "")
        address = valid_address(typed)
        if address is None:
            return self.login_page(
                return_to,
                400,
                email=typed[:254],
                message="Enter one email address, like ana@example.com.",
                error=True,
                invalid=True,
            )
        client = client_address(request)
        result, mail = await run_in_threadpool(self.gate.request_code, address, client)
        if result == "client-limit":
            return self.login_page(
                return_to,
                429,
                email=address,
                error=True,
                message="Too many codes were asked for from your network. "
                "Wait 15 minutes, then try again.",
            )
        task = BackgroundTask(self._send_quietly, mail) if mail is not None else None
        response = RedirectResponse(f"{PREFIX}/code", 303, headers=NO_STORE, background=task)
        flow = self.gate.signer.sign("login", {"email": address, "return": return_to}, FLOW_SECONDS)
        response.set_cookie(self._flow(secure), flow, **cookie_attributes(secure, FLOW_SECONDS))
        return response

    def _send_quietly(self, mail: Any) -> None:
        # The page said the same whatever happened; a failure goes to the log and stderr.
        try:
            self.gate.send(mail)
        except Exception as exc:
            print(f"tiers gate {self.gate.name}: {exc}", file=sys.stderr)

    def _flow_claims(self, request: Request, secure: bool) -> dict[str, Any] | None:
        value = request.cookies.get(self._flow(secure))
        return self.gate.signer.unsign("login", value) if value else None

    async def code_page(self, request: Request) -> Response:
        here = self.here(request)
        if here is None:
            return self.not_here()
        claims = self._flow_claims(request, here[1])
        if claims is None:
            return RedirectResponse(f"{PREFIX}/login", 303, headers=NO_STORE)
        return self.page("code", email=claims["email"], return_to=claims["return"])

    async def enter_code(self, request: Request) -> Response:
        here = self.here(request)
        if here is None:
            return self.not_here()
        site, secure = here
        claims = self._flow_claims(request, secure)
        if claims is None:
            return self.error(
                "Sign-in expired",
                "This sign-in took too long or did not start here; ask for a new code.",
                400,
            )
        address, return_to = str(claims["email"]), safe_return(str(claims["return"]))
        form = await request.form()
        code = "".join(str(form.get("code") or "").split())
        client = client_address(request)
        result = await run_in_threadpool(self.gate.check_code, address, code, client)
        if result != "ok":
            message = (
                "Too many wrong codes from your network. Wait 15 minutes, then ask for a new code."
                if result == "client-limit"
                else "That code is not right, or no longer works. "
                "Check the newest mail, or ask for a new code."
            )
            status = 429 if result == "client-limit" else 400
            return self.page(
                "code", status, email=address, return_to=return_to, message=message, error=True
            )
        identity = Identity(kind="user", name=address, method="otp", email=address)
        response = await self.signed_in(identity, site, secure, return_to, client)
        self.clear_cookie(response, self._flow(secure), secure)
        return response

    # -- after any login: the session, and the hop through the other hosts ---------------------

    async def signed_in(
        self, identity: Identity, site: Site, secure: bool, return_to: str, client: str
    ) -> Response:
        cookie = await run_in_threadpool(self.gate.start_session, identity, client)
        session_id = self.gate.sessions.session_id(cookie)
        hops = self.gate.other_hosts(site)
        final = site.url(return_to)
        if hops and session_id is not None:
            ticket = self.gate.tickets.issue(session_id, hops, final)
            location = self.gate.sites[hops[0]].url(f"{PREFIX}/session?ticket={ticket}")
        else:
            location = return_to
        response = RedirectResponse(location, 303, headers=NO_STORE)
        response.set_cookie(
            self._cookie(secure), cookie, **cookie_attributes(secure, self.gate.session_seconds)
        )
        return response

    async def session_hop(self, request: Request) -> Response:
        here = self.here(request)
        if here is None:
            return self.not_here()
        site, secure = here
        ticket = self.gate.tickets.spend(request.query_params.get("ticket", ""), site.host)
        seconds = self.gate.session_seconds_left(ticket.session_id) if ticket else 0
        if ticket is None or seconds <= 0:
            return self.error(
                "Link expired",
                "This sign-in link has expired or was used already; sign in again.",
                400,
            )
        if ticket.rest:
            following = self.gate.tickets.issue(ticket.session_id, ticket.rest, ticket.final)
            location = self.gate.sites[ticket.rest[0]].url(f"{PREFIX}/session?ticket={following}")
        else:
            location = ticket.final
        response = RedirectResponse(location, 303, headers=NO_STORE)
        cookie = self.gate.sessions.cookie(ticket.session_id, seconds)
        response.set_cookie(self._cookie(secure), cookie, **cookie_attributes(secure, seconds))
        return response

    # -- logout, keys, health -----------------------------------------------------------------

    async def logout(self, request: Request) -> Response:
        here = self.here(request)
        if here is None:
            return self.not_here()
        _site, secure = here
        if request.method == "GET":
            return self.page("logout")
        found = self.gate.sessions.identity(request.cookies.get(self._cookie(secure)), now())
        if found is not None:
            session_id, identity = found
            await run_in_threadpool(
                self.gate.end_session, session_id, identity.name, client_address(request)
            )
        response = self.page("logged-out")
        self.clear_cookie(response, self._cookie(secure), secure)
        return response

    async def certs(self, _request: Request) -> Response:
        return JSONResponse(self.gate.keys.jwks(), headers={"Cache-Control": "max-age=60"})

    async def health(self, _request: Request) -> Response:
        return JSONResponse({"status": "ok", "environment": self.gate.name})
