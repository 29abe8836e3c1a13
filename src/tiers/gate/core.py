"""One environment's gate: its rules, caches and stores, and the login work behind pages.

:class:`Gate` is what the ASGI app (:mod:`tiers.gate.app`) calls. The per-request part
(:meth:`Gate.check`) reads memory only: the session and token caches (reloaded from the
state store by :meth:`Gate.refresh`, every second), a cached assertion, the decision.
The login work (PINs, sessions, events) is plain blocking code the app runs in threads.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Literal

from tiers.config import Config, Environment
from tiers.errors import UsageError
from tiers.gate import otp
from tiers.gate.assertion import AssertionCache, Keys
from tiers.gate.identity import Identity
from tiers.gate.policy import Decision, Malformed, Policy, Target, normalise_host
from tiers.gate.secret import gate_dir, secret
from tiers.gate.sessions import SessionCache, Signer, Tickets, cookie_host
from tiers.gate.store import AccessStore, now
from tiers.gate.tokens import TokenCache
from tiers.state import StateStore

__all__ = ["Check", "Gate", "Site", "protected"]

CodeResult = Literal["sent", "client-limit"]
CACHED = 1024
"""Targets (host and URI) up to this long are normalised once and remembered, with their
decision; longer ones are worked out afresh each time, so no one fills the gate's memory
with long URIs (:meth:`Gate.check`, :mod:`tiers.gate.verify`)."""
PURGE_EVERY = timedelta(hours=1)
PURGE_AFTER = timedelta(days=1)
"""Ended sessions and old PINs are kept this long (far beyond the PIN limits' window)."""


@dataclass(frozen=True)
class Site:
    """One host of the environment: the service there and the scheme it is served on."""

    host: str
    scheme: str
    service: str

    def url(self, path: str) -> str:
        return f"{self.scheme}://{self.host}{path}"


@dataclass(frozen=True)
class Check:
    """What ``/verify`` answers: a decision, and for an allow, who and their assertion."""

    decision: Decision
    site: Site
    identity: Identity | None = None
    assertion: str | None = None


def protected(config: Config, environment: str) -> Environment:
    """The environment, if tiers' own gate guards it; else a UsageError saying why."""
    env = config.environments.get(environment)
    if env is None:
        known = ", ".join(config.environments)
        raise UsageError(f"no environment {environment!r} in tiers.toml; known: {known}")
    if not env.access.protect:
        raise UsageError(
            f"{environment} is not protected: set [environments.{environment}.access] "
            "protect = true in tiers.toml to put it behind the gate"
        )
    if env.access.provider != "tiers":
        raise UsageError(
            f"{environment} is protected by {env.access.provider} (access.provider), not by "
            'tiers\' own gate; set provider = "tiers" to run the gate'
        )
    return env


def _sites(env: Environment) -> dict[str, Site]:
    sites: dict[str, Site] = {}
    for service, binding in env.services.items():
        address = binding.address
        if not address:
            continue
        scheme = "https" if address.startswith("https:") else "http"
        host = normalise_host(address.split("://", 1)[-1].split("/", 1)[0], scheme=scheme)
        sites.setdefault(host, Site(host, scheme, service))
    return sites


class Gate:
    """The gate of one protected environment."""

    def __init__(
        self, config: Config, environment: str, state: StateStore, state_dir: Path
    ) -> None:
        self.config = config
        self.env = protected(config, environment)
        self.name = environment
        self.project = config.project.name
        self.directory = gate_dir(state_dir, environment)
        self.key = secret(self.directory)
        self.signer = Signer(self.key, environment)
        self.store = AccessStore(state.engine, environment, state.url)
        self.policy = Policy(self.env)
        self.sessions = SessionCache(self.signer)
        self.tokens = TokenCache(environment)
        self.keys = Keys(self.directory / "keys.json")
        self.assertions = AssertionCache(self.keys, environment)
        self.tickets = Tickets()
        self.sites = _sites(self.env)
        self.session_seconds = self.env.access.session_hours * 3600
        self.maildir = self.directory / "mail"
        self._purged: datetime | None = None
        self._decisions = lru_cache(maxsize=4096)(self.policy.decide)

    # -- kept fresh by the app's refresh loop -------------------------------------------

    def refresh(self) -> None:
        """Reload live sessions and tokens, record token uses, pick up rotated keys; once
        an hour, delete what ended a day ago (:meth:`AccessStore.purge`)."""
        moment = now()
        if self._purged is None or moment - self._purged >= PURGE_EVERY:
            self.store.purge(moment - PURGE_AFTER)
            self._purged = moment
        self.sessions.load(self.store.live_sessions())
        self.tokens.load(self.store.tokens())
        uses = self.tokens.take_uses()
        if uses:
            self.store.tokens_used(uses)
        if self.keys.reload():
            self.assertions.clear()

    # -- the per-request decision ---------------------------------------------------------

    def site(self, host: str, scheme: str) -> Site | None:
        try:
            return self.sites.get(normalise_host(host, scheme=scheme))
        except Malformed:
            return None

    def check(
        self, target: Target, site: Site, method: str, holder: str | None, identity: Identity | None
    ) -> Check:
        # the rules never change under a running gate: a decision, once made, is kept
        short = len(target.host) + len(target.path) <= CACHED
        decide = self._decisions if short else self.policy.decide
        decision = decide(target, identity, method=method)
        if decision.action != "allow":
            return Check(decision, site, identity)
        if identity is None or holder is None:  # an allow for nobody: refuse, never guess
            return Check(Decision("deny", "default deny", "no identity"), site)
        audience = f"{self.name}/{site.service}"
        return Check(decision, site, identity, self.assertions.get(holder, identity, audience))

    # -- who may get a code ----------------------------------------------------------------

    def may_enter(self, identity: Identity) -> bool:
        """Whether any ``allow`` selector names this person (before they prove it)."""
        return any(identity.matches(selector) for selector in self.env.access.allow)

    def request_code(self, address: str, client: str) -> tuple[CodeResult, otp.Mail | None]:
        """Record a code request; the mail to send, if the address may enter."""
        since = now() - otp.WINDOW
        if self.store.codes_since(since, client=client) >= otp.PER_CLIENT:
            self.store.event(
                "code-refused",
                address,
                method="otp",
                client=client,
                detail="too many requests from this client",
            )
            return "client-limit", None
        if self.store.codes_since(since, address=address) >= otp.PER_ADDRESS:
            self.store.event(
                "code-refused",
                address,
                method="otp",
                client=client,
                detail="too many codes for this address",
            )
            return "sent", None
        person = Identity(kind="user", name=address, method="otp", email=address)
        if not self.may_enter(person):
            self.store.add_code(address, None, client, otp.LIFETIME)
            self.store.event(
                "code-refused",
                address,
                method="otp",
                client=client,
                detail="no allow rule names this address",
            )
            return "sent", None
        code = otp.new_code()
        self.store.add_code(address, otp.digest(self.key, address, code), client, otp.LIFETIME)
        sender = (
            self.env.access.smtp.sender
            if self.env.access.smtp
            else f"gate@{self.name}.tiers.invalid"
        )
        self.store.event("code-sent", address, method="otp", client=client)
        return "sent", otp.compose(address, code, self.name, self.project, sender)

    def send(self, mail: otp.Mail) -> None:
        try:
            otp.send(mail, self.env.access.smtp, self.maildir)
        except Exception as exc:
            self.store.event("code-send-failed", mail.to, method="otp", detail=str(exc))
            raise

    def check_code(
        self, address: str, code: str, client: str
    ) -> Literal["ok", "wrong", "client-limit"]:
        """Spend the address's newest code if ``code`` is it."""
        since = now() - otp.WINDOW
        wrong = self.store.events(
            kind="login-failed", since=since, client=client, limit=otp.WRONG_PER_CLIENT
        )
        if len(wrong) >= otp.WRONG_PER_CLIENT:
            return "client-limit"
        found = self.store.newest_code(address)
        usable = (
            found is not None
            and found.digest is not None
            and found.used_at is None
            and found.expires_at > now()
            and found.attempts < otp.TRIES
        )
        if not usable or found is None or found.digest is None:
            self.store.event(
                "login-failed",
                address,
                method="otp",
                client=client,
                detail="no usable code: expired, used, or too many wrong tries",
            )
            return "wrong"
        if not hmac.compare_digest(found.digest, otp.digest(self.key, address, code)):
            self.store.code_failed(found.id)
            self.store.event(
                "login-failed", address, method="otp", client=client, detail="wrong code"
            )
            return "wrong"
        if not self.store.use_code(found.id):
            return "wrong"
        return "ok"

    # -- sessions ------------------------------------------------------------------------------

    def start_session(self, identity: Identity, client: str) -> str:
        """A new session for ``identity``; the cookie value that carries it."""
        session_id = secrets.token_urlsafe(32)
        expires = now() + timedelta(seconds=self.session_seconds)
        self.store.create_session(session_id, identity, expires)
        self.sessions.add(session_id, identity, expires)
        self.store.event("login", identity.name, method=identity.method, client=client)
        return self.sessions.cookie(session_id, self.session_seconds)

    def end_session(self, session_id: str, who: str, client: str) -> None:
        self.sessions.drop(session_id)
        self.store.revoke_session(session_id)
        self.store.event("logout", who, client=client)

    def session_seconds_left(self, session_id: str) -> int:
        found = self.sessions.sessions.get(session_id)
        if found is None:
            return 0
        return max(0, int((found[1] - now()).total_seconds()))

    def other_hosts(self, site: Site) -> tuple[str, ...]:
        """The environment's hosts that need a cookie of their own after a login on
        ``site`` (a different host name: cookies ignore ports), one per host name."""
        seen = {cookie_host(site.host)}
        hops = []
        for host in self.sites:
            if cookie_host(host) not in seen:
                seen.add(cookie_host(host))
                hops.append(host)
        return tuple(hops)
