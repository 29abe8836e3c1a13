"""Secrets per tier: encrypted in the repository, a key per tier, in SOPS's format.

Each environment's secrets live in ``secrets/<env>.yaml`` beside tiers.toml: a SOPS file
(YAML, AES-256-GCM values, a MAC) whose data key is wrapped for that tier's age
recipients only, so the real ``sops`` reads what tiers writes and tiers reads what
``sops`` writes, and a staging key does not open production. Identities come from
``SOPS_AGE_KEY``, ``SOPS_AGE_KEY_FILE`` or ``~/.config/tiers/keys.txt``
(:mod:`tiers.secrets.keys`). Each value's facts (set when, by whom, its fingerprint) sit
in plaintext beside it; fingerprints tell whether two tiers hold the same value without
either's key, and cannot be brute-forced from outside (:mod:`tiers.secrets.fingerprints`).

For other code (checks, delivery to processes, docs)::

    values(project_dir, "staging")      # {"DATABASE_URL": "postgresql://…"}, in memory
    entries(project_dir, "production")  # [Entry(name, set_at, set_by, fingerprint)], no key
    recipients(project_dir, "staging")  # ["age1…", …]: who can read that tier
    has_file(project_dir, "staging")    # whether the tier has a secrets file

``values`` raises :class:`Unreadable` (a UsageError, exit 2) naming the tier's recipients
when no identity here opens it; all three raise a UsageError when the tier has no file
yet or it is corrupt. :class:`Store` has the commands' operations, for the environments
a tiers.toml declares.
"""

from __future__ import annotations

from pathlib import Path

from tiers.secrets.sops import CorruptFile
from tiers.secrets.store import DIRECTORY, Diff, Generated, Store
from tiers.secrets.tier import Entry, Unreadable, check_name

__all__ = [
    "DIRECTORY",
    "CorruptFile",
    "Diff",
    "Entry",
    "Generated",
    "Store",
    "Unreadable",
    "check_name",
    "entries",
    "has_file",
    "recipients",
    "values",
]


def values(project_dir: Path, environment: str) -> dict[str, str]:
    """The tier's secrets, decrypted in memory: ``NAME → value``."""
    return Store(project_dir).values(environment)


def entries(project_dir: Path, environment: str) -> list[Entry]:
    """Each secret's name, when and by whom it was set, and its fingerprint; no key needed."""
    return Store(project_dir).entries(environment)


def recipients(project_dir: Path, environment: str) -> list[str]:
    """The age public keys the tier's data key is wrapped for (who can read it)."""
    return Store(project_dir).recipients(environment)


def has_file(project_dir: Path, environment: str) -> bool:
    """Whether ``secrets/<env>.yaml`` exists (a tier without one has no secrets yet)."""
    return Store(project_dir).exists(environment)
