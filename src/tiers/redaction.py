"""Secret values this process has read, masked wherever tiers writes text.

Delivery registers each value it decrypts; everything tiers prints (``cli.io``), records
(the state store's step details and errors) or raises from a command's output
(``run_command``) passes through :func:`clean`, so a migration that echoes its
``DATABASE_URL`` or a crash that prints its environment shows ``***`` instead of the
value. Errors name the secret; its value never leaves the process that was given it.

>>> register({"SECRET_KEY": "s3cr3t-value"})
>>> clean("failed: s3cr3t-value rejected")
'failed: *** rejected'
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["clean", "register"]

_MINIMUM = 4  # shorter values would mask ordinary words; none is a real secret
_known: set[str] = set()


def register(values: Iterable[str]) -> None:
    """Mask ``values`` from now on in everything tiers writes."""
    _known.update(v for v in values if len(v) >= _MINIMUM)


def clean(text: str) -> str:
    """``text`` with every registered value replaced by ``***`` (longest first)."""
    if not _known or not text:
        return text
    for value in sorted(_known, key=len, reverse=True):
        if value in text:
            text = text.replace(value, "***")
    return text
