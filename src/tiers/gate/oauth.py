"""The GitHub and OpenID Connect routes: state, the callback, and the session after it.

``/.tiers/access/{github,oidc}/start`` sends the browser to the provider with a random
``state`` (and, for OIDC, a ``nonce``) kept in a signed, HttpOnly cookie that lives ten
minutes; ``/callback`` checks that cookie's state against the query in constant time,
asks the provider's module who signed in, checks the ``allow`` rules and starts the
session exactly as the PIN login does. The providers' own protocol lives in
:mod:`tiers.gate.github` and :mod:`tiers.gate.oidc`:

- ``authorize_url(cfg, redirect_uri, state)`` (OIDC: ``…, nonce``; may be async);
- ``async identity(cfg, client_secret, code, redirect_uri)`` (OIDC: ``…, nonce``),
  raising ``tiers.gate.github.LoginFailed`` with a message for the person;
- ``callback_error(params)`` (OIDC: ``callback_error(cfg, params)``), if they have it.

Where a module is absent, or the method is not in ``access.login``, the routes answer
404 "GitHub login is not configured". The client secret is read from the gate's
environment variable that ``client_secret`` names.
"""

from __future__ import annotations

import importlib
import inspect
import os
import secrets
from types import ModuleType
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response

from tiers.gate.app import FLOW_SECONDS, NO_STORE, PREFIX, GateApp, client_address
from tiers.gate.core import Site
from tiers.gate.identity import Identity
from tiers.gate.returns import safe_return
from tiers.gate.sessions import cookie_attributes, cookie_name

__all__ = ["OAuthRoutes"]


def _login_module(provider: str) -> ModuleType | None:
    try:
        return importlib.import_module(f"tiers.gate.{provider}")
    except ModuleNotFoundError as exc:
        if exc.name == f"tiers.gate.{provider}":
            return None
        raise


def _login_failed(module: ModuleType) -> type[Exception]:
    found = getattr(module, "LoginFailed", None) or getattr(
        _login_module("github"), "LoginFailed", None
    )
    return found if isinstance(found, type) and issubclass(found, Exception) else RuntimeError


def _callback_error(
    module: ModuleType, provider: str, config: Any, params: dict[str, str]
) -> object:
    """What the provider's callback says went wrong (its module words it), or None."""
    words = getattr(module, "callback_error", None)
    if words is not None:
        return words(config, params) if provider == "oidc" else words(params)
    if "error" in params or "code" not in params:
        return (
            f"The sign-in was not completed ({params.get('error', 'no code')[:40]}). Sign in again."
        )
    return None


class OAuthRoutes:
    """The start and callback routes, bound to one gate app."""

    def __init__(self, app: GateApp) -> None:
        self.app = app
        self.gate = app.gate
        self.access = app.access

    def _provider(self, provider: str) -> tuple[ModuleType, Any] | None:
        if provider not in ("github", "oidc"):
            return None
        config = self.access.github if provider == "github" else self.access.oidc
        if provider not in self.access.login or config is None:
            return None
        module = _login_module(provider)
        return (module, config) if module is not None else None

    def _not_configured(self, provider: str) -> Response:
        label = "GitHub" if provider == "github" else "OIDC"
        return PlainTextResponse(f"{label} login is not configured\n", 404)

    def _cookie(self, secure: bool) -> str:
        return cookie_name(self.gate.name, secure, "oauth")

    def _resolve(self, request: Request) -> Response | tuple[str, ModuleType, Any, Any, bool]:
        """The provider, its module and config, and the site asked for; or the answer
        when either is unknown."""
        provider = request.path_params["provider"]
        found = self._provider(provider)
        if found is None:
            return self._not_configured(provider)
        here = self.app.here(request)
        if here is None:
            return self.app.not_here()
        module, config = found
        site, secure = here
        return provider, module, config, site, secure

    async def start(self, request: Request) -> Response:
        resolved = self._resolve(request)
        if isinstance(resolved, Response):
            return resolved
        provider, module, config, site, secure = resolved
        state, nonce = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        redirect_uri = site.url(f"{PREFIX}/{provider}/callback")
        args = (
            (config, redirect_uri, state, nonce)
            if provider == "oidc"
            else (config, redirect_uri, state)
        )
        url = module.authorize_url(*args)
        if inspect.isawaitable(url):
            url = await url
        response = RedirectResponse(str(url), 302, headers=NO_STORE)
        claims = {
            "state": state,
            "nonce": nonce,
            "provider": provider,
            "return": safe_return(request.query_params.get("return")),
        }
        value = self.gate.signer.sign("oauth", claims, FLOW_SECONDS)
        response.set_cookie(self._cookie(secure), value, **cookie_attributes(secure, FLOW_SECONDS))
        return response

    async def callback(self, request: Request) -> Response:
        resolved = self._resolve(request)
        if isinstance(resolved, Response):
            return resolved
        provider, module, config, site, secure = resolved
        value = request.cookies.get(self._cookie(secure))
        claims = self.gate.signer.unsign("oauth", value) if value else None
        state = request.query_params.get("state", "")
        if (
            claims is None
            or claims.get("provider") != provider
            or not secrets.compare_digest(str(claims["state"]), state)
        ):
            return self.app.error(
                "Sign-in expired",
                "This sign-in took too long or did not start here; try again.",
                400,
            )
        return_to = safe_return(str(claims.get("return") or "/"))
        refused = _callback_error(module, provider, config, dict(request.query_params))
        if refused is not None:  # cancelled, or refused: say why, and offer the other ways in
            return self.app.login_page(return_to, 403, message=str(refused)[:300], error=True)
        client = client_address(request)
        identity = await self._identity(module, provider, config, site, claims, request, client)
        if isinstance(identity, Response):
            return identity
        if not self.gate.may_enter(identity):
            await run_in_threadpool(
                self.gate.store.event,
                "login-failed",
                identity.name,
                method=identity.method,
                client=client,
                detail="no allow rule names this identity",
            )
            return self.app.page("denied", 403, who=identity.email or identity.name)
        response = await self.app.signed_in(identity, site, secure, return_to, client)
        self.app.clear_cookie(response, self._cookie(secure), secure)
        return response

    async def _identity(
        self,
        module: ModuleType,
        provider: str,
        config: Any,
        site: Site,
        claims: dict[str, Any],
        request: Request,
        client: str,
    ) -> Identity | Response:
        secret_name = config.client_secret
        secret = os.environ.get(secret_name)
        if not secret:
            return self.app.error(
                "Sign-in unavailable",
                f"The gate has no {secret_name}; add it to {self.gate.name}'s secrets.",
                503,
            )
        redirect_uri = site.url(f"{PREFIX}/{provider}/callback")
        code = request.query_params["code"]
        failed = _login_failed(module)
        try:
            if provider == "oidc":
                identity = await module.identity(
                    config, secret, code, redirect_uri, claims["nonce"]
                )
            else:
                identity = await module.identity(config, secret, code, redirect_uri)
        except failed as exc:
            await run_in_threadpool(
                self.gate.store.event,
                "login-failed",
                None,
                method=provider,
                client=client,
                detail=str(exc),
            )
            return self.app.error("Sign-in failed", str(exc), 403)
        if not isinstance(identity, Identity) or identity.kind != "user":
            return self.app.error("Sign-in failed", "The provider gave no person to sign in.", 403)
        return identity
