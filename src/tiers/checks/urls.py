"""Connection URLs as the checks compare and show them; none of this ever raises.

Two spellings of one server are one server: ``redis://H`` is ``redis://h:6379/0``, and
``postgres://u@db/app`` is ``postgresql://db:5432/app``. A URL that does not parse is
compared as its raw text (the model reports it, if anywhere).

>>> redis_identity("redis://Cache.internal/")
'redis://cache.internal:6379/0'
>>> database_identity("postgres://u:pw@DB.example.com/app")
'postgresql://db.example.com:5432/app'
"""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

from tiers.config.model import redact

_PASSWORD = re.compile(r"^([a-z][a-z0-9+.-]*://[^/@:\s]*:)[^/@\s]+@", re.I)
_POSTGRES = ("postgres", "postgresql")


def redis_identity(url: str) -> str:
    """The server and database number ``url`` names; TLS or not, it is the same server."""
    try:
        parts = urlsplit(url)
        db = parse_qs(parts.query).get("db", [""])[0]
        if parts.scheme == "unix":
            return f"unix://{parts.path}/{int(db or 0)}"
        host = parts.hostname or ""
        db = parts.path.strip("/") or db or "0"
        return f"redis://{_host(host)}:{parts.port or 6379}/{int(db)}"
    except ValueError:
        return url


def database_identity(url: str) -> str:
    """The server and database ``url`` names (PostgreSQL's default port is 5432)."""
    found = _postgres(url)
    return f"postgresql://{found[0]}/{found[1]}" if found else url


def database_server(url: str) -> str:
    """``127.0.0.1:5433``: the PostgreSQL cluster ``url`` connects to, whatever database."""
    found = _postgres(url)
    return found[0] if found else url


def _postgres(url: str) -> tuple[str, str] | None:
    """``(host:port, database)`` of a PostgreSQL URL; None if it is not one that parses."""
    try:
        parts = urlsplit(url)
        scheme = parts.scheme.lower().partition("+")[0]  # postgresql+psycopg is postgresql
        host = parts.hostname or parse_qs(parts.query).get("host", [""])[0]
        port = parts.port or 5432
    except ValueError:
        return None
    if scheme not in _POSTGRES:
        return None
    return f"{_host(host)}:{port}", parts.path.strip("/")


def shown(url: str) -> str:
    """``url`` with its password as ``***``, even when the URL does not parse."""
    try:
        return redact(url)
    except ValueError:
        return _PASSWORD.sub(r"\1***@", url)


def has_password(value: str) -> bool:
    """Whether ``value`` is a URL with a password in it (``postgresql://u:pw@host/db``)."""
    return "://" in value and shown(value) != value


def _host(host: str) -> str:
    host = host.lower().rstrip(".")
    return f"[{host}]" if ":" in host else host
