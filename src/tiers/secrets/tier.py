"""One tier's file, ``secrets/<env>.yaml``: what it tells without a key, and opened with one.

Beside the encrypted values, the file keeps each value's facts in plaintext under
``tiers_unencrypted`` (a key sops leaves unencrypted, by its suffix, and covers by the
MAC), one line per secret::

    DATABASE_URL: ENC[AES256_GCM,data:…,iv:…,tag:…,type:str]
    tiers_unencrypted: |
        DATABASE_URL: {set: '2026-12-01T09:00:00Z', by: ana@plyr.fm, fingerprint: 3f9a…}
    sops:
        age: …

It is one string rather than a mapping so ``sops exec-env`` and sops's dotenv output
still take the file (they refuse nested values); to them it is one more variable.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from tiers.errors import UsageError
from tiers.secrets import keys, sops

__all__ = ["META", "Entry", "Opened", "TierFile", "Unreadable", "check_name"]

META = "tiers_unencrypted"
_NAME = re.compile(r"[A-Z_][A-Z0-9_]*")


class Unreadable(UsageError):
    """No identity on this machine can open a tier's (or the fingerprint key's) data key."""


def check_name(name: str) -> str:
    """``name`` if it is an environment variable name, else a UsageError saying why."""
    if not _NAME.fullmatch(name):
        raise UsageError(
            f"{name!r} is not an environment variable name (like DATABASE_URL): use "
            "upper-case letters, digits and _, not starting with a digit"
        )
    return name


@dataclass(frozen=True)
class Entry:
    """What is known of one secret without decrypting it."""

    name: str
    set_at: str | None = None
    """When it was last set (UTC, RFC 3339); None when plain sops set it."""
    set_by: str | None = None
    """Who set it: their git user.email, else their login name."""
    fingerprint: str | None = None
    """32 hex digits (see :mod:`tiers.secrets.fingerprints`); None when not yet known."""

    def to_json(self) -> dict[str, str | None]:
        return {
            "name": self.name,
            "set": self.set_at,
            "by": self.set_by,
            "fingerprint": self.fingerprint,
        }


@dataclass(frozen=True)
class TierFile:
    """A tier's secrets file as read from disk, still encrypted."""

    environment: str
    path: Path
    file: sops.SopsFile

    @classmethod
    def read(cls, environment: str, path: Path, shown: str) -> TierFile:
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            why = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
            raise UsageError(f"cannot read {shown}: {why}") from None
        return cls(environment, path, _checked(sops.parse(text, shown)))

    @property
    def shown(self) -> str:
        return self.file.name

    @property
    def recipients(self) -> list[str]:
        return self.file.recipients

    def entries(self) -> list[Entry]:
        facts = _facts(self.file.tree.get(META), self.shown)
        return [facts.get(name, Entry(name)) for name in self.file.tree if name != META]

    def open(self, held: list[keys.Identity], what: str | None = None) -> Opened:
        """Decrypt with an identity held here; Unreadable naming the recipients otherwise."""
        try:
            data_key = keys.unwrap(self.file.stanzas, held)
        except ValueError as exc:
            raise sops.CorruptFile(
                f"{self.shown}: the data key wrapped for {exc} does not open with that key; "
                f"restore it from git (git checkout -- {self.shown})"
            ) from None
        if data_key is None:
            raise Unreadable(unreadable(what or f"{self.environment}'s secrets", self, held))
        plain = sops.decrypt(self.file, data_key)
        facts = _facts(plain.values.pop(META, None), self.shown)
        values = {name: _string(value) for name, value in plain.values.items()}
        return Opened(
            values=values,
            entries={name: facts.get(name, Entry(name)) for name in values},
            data_key=data_key,
            stanzas=self.file.stanzas,
            meta=self.file.meta,
            stash=plain.stash,
            shown=self.shown,
        )


@dataclass
class Opened:
    """A tier's values in memory, and what writing them back needs."""

    values: dict[str, str]
    entries: dict[str, Entry]
    data_key: bytes
    stanzas: list[tuple[str, str]]
    meta: dict[str, Any] | None = None
    stash: dict[tuple[str, str], str] = field(default_factory=dict)
    shown: str = "the file"

    def encode(self) -> str:
        """The file's text: values encrypted, their facts beside them, the MAC over both."""
        rules = self.meta or {"unencrypted_suffix": "_unencrypted"}
        for name in self.values:
            if not sops.encrypts(name, rules):  # a file sops made under rules of its own
                raise UsageError(
                    f"{self.shown}: its sops rules would leave {name} unencrypted, and tiers "
                    "writes no secret in plaintext; make the file again with tiers"
                )
        tree: dict[str, sops.Scalar] = dict(self.values)
        if self.values and not sops.encrypts(META, rules):
            facts = {n: _fact_json(self.entries.get(n, Entry(n))) for n in self.values}
            tree[META] = yaml.safe_dump(
                facts, default_flow_style=None, sort_keys=False, width=2**20
            )
        return sops.encode(tree, self.data_key, self.stanzas, self.meta, self.stash)

    def set_at(self, name: str, when: str, who: str) -> None:
        """Record that ``name`` was set ``when`` by ``who``."""
        self.entries[name] = replace(self.entry(name), set_at=when, set_by=who)

    def fingerprint(self, name: str, fingerprint: str) -> None:
        self.entries[name] = replace(self.entry(name), fingerprint=fingerprint)

    def entry(self, name: str) -> Entry:
        return self.entries.get(name) or Entry(name)


def unreadable(what: str, tier: TierFile, held: list[keys.Identity]) -> str:
    recipients = ", ".join(tier.recipients) or "none"
    if held:
        mine = ", ".join(f"{i.public} ({i.source})" for i in held)
        return f"no identity here can read {what}; recipients: {recipients}; keys here: {mine}"
    return (
        f"no identity here can read {what}; recipients: {recipients}; no age key here "
        f"(looked in SOPS_AGE_KEY, SOPS_AGE_KEY_FILE and {keys.shown(keys.keys_file())}): "
        "run `tiers secrets init ENV` to make one, and ask a recipient to add it"
    )


def _checked(file: sops.SopsFile) -> sops.SopsFile:
    if not file.stanzas:
        raise UsageError(
            f"{file.name} has no age recipients (sops.age is empty), so no one can read it; "
            f"restore it from git (git checkout -- {file.name})"
        )
    for name in file.tree:
        if name != META:
            try:
                check_name(name)
            except UsageError as exc:
                raise UsageError(f"{file.name}: {exc}") from None
    return file


def _facts(block: object, shown: str) -> dict[str, Entry]:
    if block is None or (isinstance(block, str) and block.startswith("ENC[")):
        return {}  # none, or encrypted under a file's own sops rules
    try:
        facts = yaml.load(block, Loader=sops.Loader) if isinstance(block, str) else None
    except yaml.YAMLError:
        facts = None
    if not isinstance(facts, dict) or not all(isinstance(v, dict) for v in facts.values()):
        raise UsageError(
            f"{shown}: {META} is not tiers' list of secrets; restore it from git "
            f"(git checkout -- {shown})"
        )
    return {
        str(name): Entry(
            str(name),
            _opt(f.get("set")),
            _opt(f.get("by")),
            _opt(f.get("fingerprint")),
        )
        for name, f in facts.items()
    }


def _fact_json(entry: Entry) -> dict[str, str]:
    facts = {"set": entry.set_at, "by": entry.set_by, "fingerprint": entry.fingerprint}
    return {key: value for key, value in facts.items() if value is not None}


def _opt(value: object) -> str | None:
    return None if value is None else str(value)


def _string(value: sops.Scalar) -> str:
    """A value as a process sees it: sops's own rendering (``true``, ``5``, ``1.5``)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else sops.as_text(value)
