"""Random values for ``tiers secrets generate``: a fresh one for each tier."""

from __future__ import annotations

import base64
import secrets
from enum import StrEnum

from cryptography.fernet import Fernet

from tiers.errors import UsageError

__all__ = ["DEFAULT_BYTES", "MIN_BYTES", "Format", "random_value"]

DEFAULT_BYTES = 32
MIN_BYTES = 16


class Format(StrEnum):
    hex = "hex"
    base64 = "base64"
    urlsafe = "urlsafe"
    """URL-safe base64 without padding (Python's ``secrets.token_urlsafe``)."""
    fernet = "fernet"
    """A Fernet key (``cryptography``): 32 bytes, URL-safe base64, as Fernet() takes it."""


def random_value(format: Format, size: int = DEFAULT_BYTES) -> str:
    """``size`` random bytes from the OS, written as ``format`` says."""
    if size < MIN_BYTES:
        raise UsageError(f"--bytes {size}: too few to be a secret; use at least {MIN_BYTES}")
    if format is Format.fernet:
        if size != 32:
            raise UsageError(f"--bytes {size}: a Fernet key is 32 bytes; leave --bytes out")
        return Fernet.generate_key().decode()
    if format is Format.hex:
        return secrets.token_hex(size)
    if format is Format.base64:
        return base64.b64encode(secrets.token_bytes(size)).decode()
    return secrets.token_urlsafe(size)
