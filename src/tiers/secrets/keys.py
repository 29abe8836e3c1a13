"""age keys: the identities this machine holds, recipients, and wrapping a data key.

Identities (private keys, ``AGE-SECRET-KEY-1…``) are read, in this order, from
``SOPS_AGE_KEY`` (the keys themselves, as CI passes them), the file named by
``SOPS_AGE_KEY_FILE``, tiers' own ``$XDG_CONFIG_HOME/tiers/keys.txt`` (default
``~/.config/tiers/keys.txt``) and sops's ``$XDG_CONFIG_HOME/sops/age/keys.txt``: the
places the real ``sops`` looks too. A key file is age-keygen's format (one key a line,
``#`` comments). The two keys.txt files must be private (mode 0600): one that others may
read is refused, with the chmod that fixes it.

Recipients (public keys) are X25519 ``age1…`` keys; an ``ssh-ed25519``/``ssh-rsa`` one
that sops wrote is kept and re-wrapped for.
"""

from __future__ import annotations

import os
import stat
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyrage

from tiers.errors import UsageError

__all__ = [
    "Identity",
    "check_recipient",
    "identities",
    "keys_file",
    "make_key",
    "shown",
    "unwrap",
    "wrap",
]

PUBLIC_PREFIX = "age1"


@dataclass(frozen=True)
class Identity:
    """One private key this machine holds, with its public key and where it was found."""

    key: Any  # pyrage.x25519.Identity
    public: str
    source: str


def config_home() -> Path:
    configured = os.environ.get("XDG_CONFIG_HOME")
    return Path(configured) if configured else Path.home() / ".config"


def keys_file() -> Path:
    """Where tiers keeps this user's age key: ``~/.config/tiers/keys.txt``."""
    return config_home() / "tiers" / "keys.txt"


def identities() -> list[Identity]:
    """Every identity this machine holds, from all the sources, each public key once."""
    found: dict[str, Identity] = {}
    for text, source in _sources():
        for identity in _parse(text, source):
            found.setdefault(identity.public, identity)
    return list(found.values())


def make_key() -> Identity:
    """A new key pair for this user, written to keys.txt (0600) after what it holds."""
    path = keys_file()
    identity = pyrage.x25519.Identity.generate()
    public = str(identity.to_public())
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    before = path.read_text(encoding="utf-8") if path.exists() else ""
    if before and not before.endswith("\n"):
        before += "\n"
    _write_private(path, f"{before}# created: {now}\n# public key: {public}\n{identity}\n")
    return Identity(identity, public, shown(path))


def check_recipient(text: str) -> str:
    """``text`` if it is an age public key, else a UsageError saying what one looks like."""
    try:
        return str(pyrage.x25519.Recipient.from_str(text.strip()))
    except pyrage.RecipientError:
        raise UsageError(
            f"{text!r} is not an age public key (age1… , as `tiers secrets init` prints)"
        ) from None


def wrap(data_key: bytes, recipient: str) -> str:
    """The data key encrypted for one recipient, as armored age text (sops's ``enc``)."""
    sealed: bytes = pyrage.encrypt(data_key, [_recipient(recipient)], armored=True)
    return sealed.decode()


def unwrap(stanzas: list[tuple[str, str]], held: list[Identity]) -> bytes | None:
    """The data key from the first stanza for a key held here; None when there is none.

    A stanza for a key held here that does not open raises ValueError naming its
    recipient: the file was damaged, not read by a stranger.
    """
    by_public = {identity.public: identity for identity in held}
    damaged = None
    for recipient, enc in stanzas:
        identity = by_public.get(recipient)
        if identity is None:
            continue
        try:
            key: bytes = pyrage.decrypt(enc.encode(), [identity.key])
        except pyrage.DecryptError:
            damaged = recipient
            continue
        return key
    if damaged is not None:
        raise ValueError(damaged)
    return None


def _recipient(text: str) -> Any:
    if text.startswith("ssh-"):
        return pyrage.ssh.Recipient.from_str(text)
    return pyrage.x25519.Recipient.from_str(text)


def _sources() -> list[tuple[str, str]]:
    out = []
    if os.environ.get("SOPS_AGE_KEY"):
        out.append((os.environ["SOPS_AGE_KEY"], "SOPS_AGE_KEY"))
    if os.environ.get("SOPS_AGE_KEY_FILE"):
        path = Path(os.environ["SOPS_AGE_KEY_FILE"])
        out.append((_read(path, "SOPS_AGE_KEY_FILE", private=False), shown(path)))
    for path in (keys_file(), config_home() / "sops" / "age" / "keys.txt"):
        if path.exists():
            out.append((_read(path, shown(path), private=True), shown(path)))
    return out


def _read(path: Path, what: str, *, private: bool) -> str:
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
        if private and mode & 0o077:
            raise UsageError(
                f"{what} can be read by others (mode {mode:04o}); make it private: chmod 600 {path}"
            )
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not text"
        raise UsageError(f"cannot read the age keys in {what} ({path}): {reason}") from None


def _parse(text: str, source: str) -> list[Identity]:
    out = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        for word in line.split():
            try:
                key = pyrage.x25519.Identity.from_str(word)
            except pyrage.IdentityError:
                # Never the line itself: it may be a key that is only mistyped.
                raise UsageError(
                    f"{source}: line {number} is not an age identity (AGE-SECRET-KEY-1…)"
                ) from None
            out.append(Identity(key, str(key.to_public()), source))
    return out


def _write_private(path: Path, body: str) -> None:
    """Write a file only its owner can read, through a temporary file and a rename."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)  # mode 0600
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(body)
        Path(tmp).replace(path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def shown(path: Path) -> str:
    """``~/.config/tiers/keys.txt`` rather than the full path under the home directory."""
    try:
        return f"~/{path.relative_to(Path.home())}"
    except ValueError:
        return str(path)
