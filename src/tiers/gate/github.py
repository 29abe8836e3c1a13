"""Signing in with GitHub: an OAuth app's web flow, and who the person is at GitHub.

The gate's routes call three things here, in order:

1. :func:`authorize_url` sends the browser to GitHub (``/login/oauth/authorize``) with
   the gate's CSRF ``state`` (the route keeps it in a cookie);
2. on the way back, :func:`callback_error` turns GitHub's ``?error=…`` (the user pressed
   Cancel, the callback URL is not the app's) into a message for the login page;
3. :func:`identity` exchanges the one-time ``code`` for a token (``POST
   /login/oauth/access_token``; GitHub reports a bad code with ``200 {"error": …}``),
   then reads ``/user``, ``/user/emails``, ``/user/orgs`` and ``/user/teams``.

What counts, and why:

- the email is the account's **primary and verified** address, nothing else: an
  unverified address proves nothing, and a secondary one may be a stale address at a
  domain the allow rules trust. No such address: the login fails, with a fix.
- orgs and teams need the ``read:org`` scope, which the app asks for. Even so GitHub only
  lists an organisation (and its teams) that lets this OAuth app see it: one with
  third-party application restrictions shows up only once an owner approves the app, or
  the user asks for it on GitHub's consent page. So a ``github-org`` rule can refuse a
  member; the allow decision, not this module, says so.
- logins, orgs and teams are lower case (``org/team-slug``): GitHub compares them without
  case, and so do the ``allow`` selectors.

Every failure is a :class:`LoginFailed` whose message the login page shows as it is: it
says what happened and what to do, and never holds a token, a code or a secret.

Example::

    url = authorize_url(cfg, "https://stg.plyr.fm/.tiers/access/github/callback", state)
    # … the browser comes back with ?code=…&state=… …
    if (failed := callback_error(request.query_params)) is not None:
        raise failed
    who = await identity(cfg, secret_value, code, redirect_uri)
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx

from tiers.config.model import GitHubLogin
from tiers.gate.identity import Identity

__all__ = ["SCOPE", "LoginFailed", "authorize_url", "callback_error", "identity"]

SCOPE = "read:user user:email read:org"
"""What the gate asks GitHub for: the profile, the email addresses, org and team membership."""

TIMEOUT = httpx.Timeout(10.0)
_MAX_PAGES = 10
"""Of 100 items each: the orgs, teams or emails one person can have, with room to spare."""
_API_HEADERS = {"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": "2022-11-28"}
_USER_AGENT = "tiers-gate"  # GitHub's API refuses requests without one
_EMAIL_SCOPES = {"user", "user:email"}
_ORG_SCOPES = {"read:org", "write:org", "admin:org"}


class LoginFailed(Exception):
    """A sign-in did not complete. The message is shown to the person on the login page:
    it says what went wrong and how to go on, and never holds a secret or a token."""


def authorize_url(cfg: GitHubLogin, redirect_uri: str, state: str) -> str:
    """Where to send the browser to sign in with GitHub; it comes back to ``redirect_uri``
    with ``code`` and this ``state``."""
    query = urlencode(
        {"client_id": cfg.client_id, "redirect_uri": redirect_uri, "scope": SCOPE, "state": state}
    )
    return f"{cfg.url.rstrip('/')}/login/oauth/authorize?{query}"


def callback_error(params: Mapping[str, str]) -> LoginFailed | None:
    """What went wrong, from the query GitHub sent back to the callback, or None when it
    sent a code. The route checks ``state`` itself, before or after this."""
    error = params.get("error")
    if error is None:
        if params.get("code"):
            return None
        return LoginFailed("GitHub sent no sign-in code back. Sign in again.")
    if error == "access_denied":
        return LoginFailed("You cancelled signing in with GitHub, so you are not signed in.")
    if error == "redirect_uri_mismatch":
        return LoginFailed(
            "GitHub refused this gate's callback address: the OAuth app's authorization "
            "callback URL must be this site's /.tiers/access/github/callback. "
            "Ask the environment's owner to fix the app."
        )
    if error == "application_suspended":
        return LoginFailed(
            "The GitHub OAuth app this gate signs in with is suspended. "
            "Ask the environment's owner."
        )
    return LoginFailed(f"GitHub refused the sign-in ({_safe(error)}). Sign in again.")


async def identity(cfg: GitHubLogin, client_secret: str, code: str, redirect_uri: str) -> Identity:
    """Who signed in: exchange ``code`` (single use, from the callback) for a token and
    read the person's login, primary verified email, orgs and teams from GitHub's API."""
    host = urlsplit(cfg.url).netloc
    try:
        async with httpx.AsyncClient(
            timeout=TIMEOUT, headers={"User-Agent": _USER_AGENT}
        ) as client:
            token, scopes = await _exchange(client, cfg, client_secret, code, redirect_uri)
            if not scopes & _EMAIL_SCOPES:
                raise LoginFailed(
                    "GitHub did not share your email addresses with the gate, so it cannot "
                    "tell who you are. Sign in again and leave the email permission on."
                )
            api = _Api(client, cfg.api_url, token)
            user, emails, orgs, teams = await asyncio.gather(
                api.get("/user"),
                api.pages("/user/emails"),
                api.pages("/user/orgs", optional=True) if scopes & _ORG_SCOPES else _nothing(),
                api.pages("/user/teams", optional=True) if scopes & _ORG_SCOPES else _nothing(),
            )
    except httpx.TimeoutException:
        raise LoginFailed(f"GitHub ({host}) did not answer in time. Try again.") from None
    except httpx.TransportError:
        raise LoginFailed(f"GitHub ({host}) could not be reached. Try again later.") from None
    login = _text(user, "login", "/user").lower()
    email = _primary_verified(emails)
    return Identity(
        kind="user",
        name=email,
        method="github",
        email=email,
        github_user=login,
        github_orgs=tuple(sorted({_text(org, "login", "/user/orgs").lower() for org in orgs})),
        github_teams=tuple(sorted({_team(team) for team in teams})),
    )


async def _exchange(
    client: httpx.AsyncClient, cfg: GitHubLogin, secret: str, code: str, redirect_uri: str
) -> tuple[str, set[str]]:
    """The access token for ``code`` and the scopes GitHub granted with it."""
    response = await client.post(
        f"{cfg.url.rstrip('/')}/login/oauth/access_token",
        data={
            "client_id": cfg.client_id,
            "client_secret": secret,
            "code": code,
            "redirect_uri": redirect_uri,
        },
        headers={"Accept": "application/json"},
    )
    body = _json(response, "the code exchange")
    if not isinstance(body, dict):
        raise LoginFailed("GitHub sent an answer to the code exchange this gate cannot read.")
    if "error" in body:  # GitHub answers 200 with an error body
        raise _token_error(str(body["error"]), cfg)
    token = body.get("access_token")
    if not isinstance(token, str) or not token:
        raise LoginFailed("GitHub sent no access token for the sign-in code. Sign in again.")
    scopes = {s.strip() for s in str(body.get("scope", "")).split(",") if s.strip()}
    return token, scopes


def _token_error(error: str, cfg: GitHubLogin) -> LoginFailed:
    if error == "bad_verification_code":
        return LoginFailed(
            "The GitHub sign-in code has expired or was already used. Sign in again."
        )
    if error == "incorrect_client_credentials":
        return LoginFailed(
            f"GitHub did not accept this gate's OAuth app (client_id {cfg.client_id!r} and "
            f"the secret {cfg.client_secret}). Ask the environment's owner to check them."
        )
    if error == "unverified_user_email":
        return LoginFailed(
            "GitHub asks you to verify your primary email address first "
            "(GitHub → Settings → Emails), then sign in again."
        )
    return callback_error({"error": error}) or LoginFailed("GitHub refused the sign-in.")


class _Api:
    """GitHub's REST API as the signed-in person (their token in each request)."""

    def __init__(self, client: httpx.AsyncClient, base: str, token: str) -> None:
        self._client = client
        self._base = base.rstrip("/")
        self._headers = {**_API_HEADERS, "Authorization": f"Bearer {token}"}

    async def get(self, path: str) -> dict[str, Any]:
        body = _json(await self._fetch(f"{self._base}{path}", path), path)
        if not isinstance(body, dict):
            raise LoginFailed(f"GitHub sent an answer to {path} this gate cannot read.")
        return body

    async def pages(self, path: str, *, optional: bool = False) -> list[dict[str, Any]]:
        """Every item of a listing, following GitHub's ``Link: <…>; rel="next"``. An
        ``optional`` listing GitHub refuses (403, 404) is empty: memberships it will not
        show only make fewer ``allow`` rules match, never more."""
        items: list[dict[str, Any]] = []
        url: str | None = f"{self._base}{path}?per_page=100"
        for _ in range(_MAX_PAGES):
            if url is None:
                break
            response = await self._fetch(url, path, optional=optional)
            if response.status_code != 200:
                return []
            page = _json(response, path)
            if not isinstance(page, list) or not all(isinstance(i, dict) for i in page):
                raise LoginFailed(f"GitHub sent an answer to {path} this gate cannot read.")
            items.extend(page)
            url = response.links.get("next", {}).get("url")
            if url is not None and not url.startswith(f"{self._base}/"):
                url = None  # the token goes to GitHub's API and nowhere else
        return items

    async def _fetch(self, url: str, path: str, *, optional: bool = False) -> httpx.Response:
        response = await self._client.get(url, headers=self._headers)
        if response.status_code == 401:
            raise LoginFailed("GitHub no longer accepts this sign-in. Sign in again.")
        if optional and response.status_code in {403, 404}:
            return response
        if response.status_code != 200:
            raise LoginFailed(
                f"GitHub answered {path} with HTTP {response.status_code}. Try again later."
            )
        return response


async def _nothing() -> list[dict[str, Any]]:
    return []


def _json(response: httpx.Response, what: str) -> object:
    if response.status_code != 200:
        raise LoginFailed(
            f"GitHub answered {what} with HTTP {response.status_code}. Try again later."
        )
    try:
        return response.json()
    except ValueError:
        raise LoginFailed(f"GitHub sent an answer to {what} this gate cannot read.") from None


def _primary_verified(emails: list[dict[str, Any]]) -> str:
    for entry in emails:
        address = entry.get("email")
        counts = entry.get("primary") is True and entry.get("verified") is True
        if counts and isinstance(address, str) and "@" in address:
            return address.lower()
    raise LoginFailed(
        "Your GitHub account has no verified primary email address, so the gate cannot "
        "tell who you are. Verify it on GitHub (Settings → Emails), then sign in again."
    )


def _team(team: dict[str, Any]) -> str:
    org = team.get("organization")
    if not isinstance(org, dict):
        raise LoginFailed("GitHub sent an answer to /user/teams this gate cannot read.")
    return f"{_text(org, 'login', '/user/teams')}/{_text(team, 'slug', '/user/teams')}".lower()


def _text(item: Mapping[str, Any], key: str, path: str) -> str:
    value = item.get(key)
    if not isinstance(value, str) or not value:
        raise LoginFailed(f"GitHub sent an answer to {path} this gate cannot read.")
    return value


def _safe(error: str) -> str:
    """An error code from the query string, shown only if it looks like one."""
    return error if re.fullmatch(r"[a-z_]{1,40}", error) else "unknown error"
