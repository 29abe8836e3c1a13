"""Sites and cookie scopes: which hosts share cookies, by the Public Suffix List."""

from __future__ import annotations

import ipaddress
from functools import cache
from urllib.parse import urlsplit

from tiers.config import Environment


@cache
def _psl() -> object:
    from publicsuffixlist import PublicSuffixList

    return PublicSuffixList()


def site(host: str) -> str:
    """The registrable domain (eTLD+1) of ``host``; cookies never cross it.

    ``api-stg.plyr.fm`` → ``plyr.fm``; ``a.github.io`` → ``a.github.io`` (github.io is a
    public suffix, so every user's pages are a site of their own); ``localhost:8001`` →
    ``localhost`` (cookies ignore ports).
    """
    name = urlsplit(f"//{host}").hostname or host
    name = name.rstrip(".")
    if name == "localhost" or name.endswith(".localhost") or _is_ip(name):
        return "localhost" if "localhost" in name else name
    found = _psl().privatesuffix(name)  # type: ignore[attr-defined]
    return str(found) if found else name


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


HOST_PREFIX = "__Host-"
"""A cookie named so is host-only: browsers refuse it with a Domain attribute."""


def cookie_scope(env: Environment) -> str | None:
    """``Domain=.plyr.fm`` when every host of ``env`` is on one site, else None.

    A session cookie named ``__Host-...`` stays on the host that sets it, whatever the site.
    """
    hosts = env.hosts
    sites = {site(h) for h in hosts}
    if len(sites) != 1:
        return None
    (only,) = sites
    if only == "localhost":
        return "host-only (localhost)"
    if env.cookie_name and env.cookie_name.startswith(HOST_PREFIX):
        return f"host-only ({HOST_PREFIX} prefix)"
    return f"Domain=.{only}"


def is_private_host(host: str | None) -> bool:
    """Loopback, a private range, or a platform's private network name (``*.internal``,
    fly.io's ``*.flycast``)."""
    if not host:
        return False
    name = host.lower()
    if name == "localhost" or name.endswith((".internal", ".flycast", ".local", ".localhost")):
        return True
    try:
        address = ipaddress.ip_address(name.strip("[]"))
    except ValueError:
        return "." not in name  # a single-label name resolves on the local network only
    return address.is_private or address.is_loopback
