"""Where the browser goes after signing in: a path on the same host, or ``/``.

The return URL comes from the request (``?return=``), so it is the classic open
redirect. Only a plain relative path is kept: it starts with exactly one ``/``, has no
backslash, no whitespace or control character, nothing outside printable ASCII, and
none of that percent-encoded in the path either (``/%09/evil``, ``/%5Cevil``, ``/%2F/evil``), so no
browser can read it as another host (``//evil``, ``/\\evil``, ``https:evil``,
``javascript:``, userinfo tricks like ``//a@evil``, full-width look-alikes of ``/``).
Anything else falls back to ``/``. The host is never taken from the return value: the
gate redirects to the host the login happened on (or, across hosts, to one of the
environment's own hosts, named server-side).

>>> safe_return("/tracks?page=2")
'/tracks?page=2'
>>> safe_return("//evil.example/")
'/'
"""

from __future__ import annotations

from urllib.parse import unquote, urlsplit

__all__ = ["safe_return"]

_MAX = 2000


def _plain(text: str) -> bool:
    return all(33 <= ord(c) < 127 for c in text) and "\\" not in text


def safe_return(value: str | None) -> str:
    if not value or len(value) > _MAX or not _plain(value):
        return "/"
    if not value.startswith("/") or value.startswith("//"):
        return "/"
    decoded = value.split("?", 1)[0].split("#", 1)[0]  # the query may hold %20 and such
    for _ in range(3):  # encodings nested up to three deep are looked through
        decoded = unquote(decoded)
        if not _plain(decoded) or decoded.startswith("//"):
            return "/"
    parts = urlsplit(value)
    if parts.scheme or parts.netloc:
        return "/"
    return value
