"""Fingerprints: whether two tiers hold the same value, without reading either.

A value's fingerprint is HMAC-SHA256 of the value under the project's fingerprint key,
cut to 128 bits (32 hex digits). It is kept in plaintext beside the value's other facts,
so ``tiers secrets ls`` and ``diff`` (and ``tiers check``) compare tiers by it without any
tier's key. Equal values have equal fingerprints in every tier of a project, whatever
their names.

The fingerprint key is 32 random bytes made once per project, by the first write to any
tier. It sits in ``secrets/_fingerprint.yaml``, a SOPS file encrypted for every recipient
of every tier (tiers re-wraps it whenever a tier's recipients change), so any team member
or tier CI key can compute and compare fingerprints, and nobody else can:

- Without the key a fingerprint says nothing: it cannot be brute-forced (guessing the
  value means guessing the key as well), and the same value in another project has
  another fingerprint, so fingerprints link nothing across projects.
- Holders of any tier's key can test a guess against another tier's fingerprint. That is
  the price of comparing tiers no one person can read; values made by
  ``tiers secrets generate`` are too long to guess.

A value changed with plain ``sops`` keeps its old fingerprint until tiers next writes
that tier (any ``tiers secrets`` write recomputes them all).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os

__all__ = ["KEY_NAME", "new_key", "of", "parse_key", "serialize_key"]

KEY_NAME = "TIERS_FINGERPRINT_KEY"
"""The one value in ``secrets/_fingerprint.yaml``: the key, base64."""

_LENGTH = 32


def of(key: bytes, value: str) -> str:
    """The fingerprint of ``value``: 32 hex digits."""
    return hmac.new(key, value.encode(), hashlib.sha256).hexdigest()[:_LENGTH]


def new_key() -> bytes:
    return os.urandom(32)


def serialize_key(key: bytes) -> str:
    return base64.b64encode(key).decode()


def parse_key(text: str) -> bytes | None:
    """The key from its stored text; None when the text is not one."""
    try:
        key = base64.b64decode(text, validate=True)
    except ValueError:
        return None
    return key if len(key) == 32 else None
