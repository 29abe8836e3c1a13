"""SOPS's file format (YAML, age recipients), so the real ``sops`` reads what tiers writes.

A SOPS file is the plaintext mapping with each value replaced by
``ENC[AES256_GCM,data:…,iv:…,tag:…,type:str]``: AES-256-GCM under a random 32-byte data
key, with a 32-byte nonce and the value's key path plus ``:`` (``DATABASE_URL:``) as
additional data, so a value copied under another name does not decrypt. Values of keys
ending in ``_unencrypted`` stay in plaintext. The ``sops`` mapping carries the data key
wrapped for each recipient (``age: [{recipient, enc}]``, armored age), ``lastmodified``
and the MAC: SHA-512 over every value in document order, as upper-case hex, encrypted
with the data key and ``lastmodified`` as additional data.

tiers keeps one level: ``NAME: value`` pairs. Comments are not kept (sops encrypts them;
tiers drops them when it rewrites a file).

>>> key = os.urandom(32)                                          # doctest: +SKIP
>>> text = encode({"A": "x"}, key, [("age1…", "-----BEGIN AGE…")])
>>> decrypt(parse(text, "a.yaml"), key).values
{'A': 'x'}
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import yaml
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from tiers.errors import UsageError

__all__ = [
    "VERSION",
    "CorruptFile",
    "Decrypted",
    "Loader",
    "SopsFile",
    "as_text",
    "decrypt",
    "encode",
    "encrypts",
    "parse",
]

VERSION = "3.11.0"
"""The sops version whose format this module writes (and tests against)."""

_NONCE = 32
_TAG = 16
_ENC = re.compile(r"^ENC\[AES256_GCM,data:(.+),iv:(.+),tag:(.+),type:(.+)\]")
_UNSUPPORTED = (
    "key_groups",
    "shamir_threshold",
    "unencrypted_comment_regex",
    "encrypted_comment_regex",
)
# sha256(b"sops"): sops starts the MAC with it when only encrypted values count.
_MAC_ONLY_ENCRYPTED = hashlib.sha256(b"sops").digest()

Scalar = str | int | float | bool | None


class CorruptFile(UsageError):
    """A SOPS file that cannot be read: not YAML, not SOPS, a value or MAC that fails."""


@dataclass(frozen=True)
class SopsFile:
    """A parsed SOPS file, still encrypted: its values and its ``sops`` metadata."""

    name: str
    tree: dict[str, Scalar]
    meta: dict[str, Any]

    @property
    def stanzas(self) -> list[tuple[str, str]]:
        """``(recipient, armored age)`` for each age recipient, in file order."""
        return [(s["recipient"], s["enc"]) for s in self.meta.get("age") or []]

    @property
    def recipients(self) -> list[str]:
        return [recipient for recipient, _ in self.stanzas]


@dataclass
class Decrypted:
    """A file's plaintext values, and what re-encrypting them unchanged needs."""

    values: dict[str, Scalar]
    stash: dict[tuple[str, str], str] = field(default_factory=dict)
    """``(name, plaintext) → ENC[…]`` as read, so unchanged values keep their ciphertext."""


def parse(text: str, name: str) -> SopsFile:
    """Read a SOPS YAML file without decrypting it; ``name`` is how errors call it."""
    try:
        data = yaml.load(text, Loader=Loader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{name}:{mark.line + 1}:{mark.column + 1}" if mark else name
        raise CorruptFile(f"{where}: not valid YAML; {_RESTORE.format(name)}") from None
    if not isinstance(data, dict) or not isinstance(data.get("sops"), dict):
        raise CorruptFile(f"{name}: not a SOPS file (no sops metadata); {_RESTORE.format(name)}")
    meta = data.pop("sops")
    _check_meta(meta, name)
    for key, value in data.items():
        if not isinstance(key, str):
            raise CorruptFile(f"{name}: the key {key!r} is not a string")
        if isinstance(value, dict | list):
            raise CorruptFile(
                f"{name}: {key} holds a {'mapping' if isinstance(value, dict) else 'list'}; "
                "a tier's file holds NAME: value pairs only"
            )
    return SopsFile(name, data, meta)


def decrypt(file: SopsFile, key: bytes) -> Decrypted:
    """Decrypt every value with the data key, and check the MAC over them."""
    out = Decrypted({})
    digest = _mac_start(file.meta)
    for name, value in file.tree.items():
        encrypted = encrypts(name, file.meta)
        plain = _decrypt_value(value, key, name, file.name) if encrypted else value
        if isinstance(value, str) and encrypted and plain is not None:
            out.stash[(name, as_text(plain))] = value
        if plain is not None and (encrypted or not file.meta.get("mac_only_encrypted")):
            digest.update(_bytes(plain))
        out.values[name] = plain
    modified = _rfc3339(file.meta["lastmodified"], file.name)
    try:
        stored = _open(file.meta["mac"], key, modified)
    except (InvalidTag, ValueError):
        stored = None
    if stored is None or stored[0].decode() != digest.hexdigest().upper():
        raise CorruptFile(
            f"{file.name}: the MAC does not match the values: the file was changed without "
            f"its key; {_RESTORE.format(file.name)}"
        )
    return out


def encode(
    values: dict[str, Scalar],
    key: bytes,
    stanzas: list[tuple[str, str]],
    meta: dict[str, Any] | None = None,
    stash: dict[tuple[str, str], str] | None = None,
) -> str:
    """The SOPS YAML text of ``values`` under the data key, wrapped as ``stanzas`` say.

    ``meta`` is the previous file's metadata, kept where tiers does not change it (its
    unencrypted suffix or regexes, other key types); ``stash`` keeps the ciphertext of
    values that did not change, so a one-value edit is a one-line diff.
    """
    meta = dict(meta or {"unencrypted_suffix": "_unencrypted"})
    stash = stash or {}
    digest = _mac_start(meta)
    tree: dict[str, Any] = {}
    for name, value in values.items():
        encrypted = encrypts(name, meta)
        if value is not None and (encrypted or not meta.get("mac_only_encrypted")):
            digest.update(_bytes(value))
        if encrypted and value is not None:
            tree[name] = stash.get((name, as_text(value))) or _seal(value, key, f"{name}:")
        else:
            tree[name] = value
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    meta["age"] = [{"recipient": r, "enc": enc} for r, enc in stanzas]
    meta["lastmodified"] = now
    meta["mac"] = _seal(digest.hexdigest().upper(), key, now)
    meta["version"] = meta.get("version") or VERSION
    tree["sops"] = {k: meta[k] for k in sorted(meta, key=_meta_order)}
    return yaml.dump(
        tree, Dumper=_Dumper, sort_keys=False, allow_unicode=True, indent=4, width=2**20
    )


_RESTORE = "restore it from git (git checkout -- {0})"
# The order sops writes its metadata in (stores/stores.go), so a file tiers rewrote
# diffs cleanly against one sops wrote.
_META_ORDER = {
    key: i
    for i, key in enumerate(
        [
            "kms",
            "gcp_kms",
            "hckms",
            "azure_kv",
            "hc_vault",
            "age",
            "lastmodified",
            "mac",
            "pgp",
            "unencrypted_suffix",
            "encrypted_suffix",
            "unencrypted_regex",
            "encrypted_regex",
            "mac_only_encrypted",
            "version",
        ]
    )
}


def _meta_order(key: str) -> int:
    return _META_ORDER.get(key, len(_META_ORDER))


def _check_meta(meta: dict[str, Any], name: str) -> None:
    for key in _UNSUPPORTED:
        if meta.get(key):
            raise CorruptFile(f"{name}: sops.{key} is set, which tiers does not support")
    for key in ("lastmodified", "mac"):
        if not isinstance(meta.get(key), str):
            raise CorruptFile(f"{name}: sops.{key} is missing; {_RESTORE.format(name)}")
    stanzas = meta.get("age")
    if not isinstance(stanzas, list) or not all(
        isinstance(s, dict)
        and isinstance(s.get("recipient"), str)
        and isinstance(s.get("enc"), str)
        for s in stanzas
    ):
        raise CorruptFile(
            f"{name}: sops.age must list {{recipient, enc}} for each age recipient; "
            f"{_RESTORE.format(name)}"
        )
    _rfc3339(meta["lastmodified"], name)


def encrypts(name: str, meta: dict[str, Any]) -> bool:
    """Whether sops encrypts the value at ``name`` (sops.go ``shouldBeEncrypted``)."""
    encrypted = True
    if meta.get("unencrypted_suffix") and name.endswith(meta["unencrypted_suffix"]):
        encrypted = False
    if meta.get("encrypted_suffix"):
        encrypted = name.endswith(meta["encrypted_suffix"])
    if meta.get("unencrypted_regex") and re.search(meta["unencrypted_regex"], name):
        encrypted = False
    if meta.get("encrypted_regex"):
        encrypted = bool(re.search(meta["encrypted_regex"], name))
    return encrypted


def _mac_start(meta: dict[str, Any]) -> Any:
    digest = hashlib.sha512()
    if meta.get("mac_only_encrypted"):
        digest.update(_MAC_ONLY_ENCRYPTED)
    return digest


def _seal(value: Scalar, key: bytes, aad: str) -> str:
    plain = _bytes(value)
    if not plain:  # sops stores an empty string as it is
        return ""
    nonce = os.urandom(_NONCE)
    sealed = AESGCM(key).encrypt(nonce, plain, aad.encode())
    data, tag = sealed[:-_TAG], sealed[-_TAG:]
    b64 = [base64.b64encode(part).decode() for part in (data, nonce, tag)]
    return f"ENC[AES256_GCM,data:{b64[0]},iv:{b64[1]},tag:{b64[2]},type:{_type(value)}]"


def _open(value: str, key: bytes, aad: str) -> tuple[bytes, str] | None:
    """``(plaintext, type)``; None for sops's empty value. Raises on a wrong key or AAD."""
    if value == "":
        return None
    match = _ENC.match(value)
    if match is None:
        raise ValueError("not an ENC[AES256_GCM,…] value")
    try:
        data, nonce, tag = (base64.b64decode(match[i], validate=True) for i in (1, 2, 3))
    except binascii.Error:
        raise ValueError("not base64") from None
    if len(tag) != _TAG or not nonce:
        raise ValueError("a tag or nonce of the wrong size")
    return AESGCM(key).decrypt(nonce, data + tag, aad.encode()), match[4]


def _decrypt_value(value: Scalar, key: bytes, name: str, file: str) -> Scalar:
    what = f"{file}: {name} cannot be decrypted"
    if not isinstance(value, str):
        raise CorruptFile(f"{what}: it is not an ENC[…] value; {_RESTORE.format(file)}")
    try:
        opened = _open(value, key, f"{name}:")
    except ValueError:
        raise CorruptFile(f"{what}: it is not an ENC[…] value; {_RESTORE.format(file)}") from None
    except InvalidTag:
        raise CorruptFile(
            f"{what}: its ciphertext or name was changed; {_RESTORE.format(file)}"
        ) from None
    if opened is None:
        return ""
    plain, kind = opened
    try:
        return _typed(plain, kind)
    except ValueError:
        raise CorruptFile(f"{what}: its type {kind!r} does not fit its value") from None


def _typed(plain: bytes, kind: str) -> Scalar:
    text = plain.decode()
    match kind:
        case "str" | "bytes" | "time":
            return text
        case "int":
            return int(text)
        case "float":
            return float(text)
        case "bool":
            if text in ("1", "t", "T", "true", "TRUE", "True"):
                return True
            if text in ("0", "f", "F", "false", "FALSE", "False"):
                return False
    raise ValueError(kind)


def _type(value: Scalar) -> str:
    if isinstance(value, bool):
        return "bool"
    return {int: "int", float: "float"}.get(type(value), "str")


def _bytes(value: Scalar) -> bytes:
    """A value as sops hashes and encrypts it (``sops.ToBytes``)."""
    return as_text(value).encode()


def as_text(value: Scalar) -> str:
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, float):  # Go's FormatFloat(v, 'f', -1, 64)
        return format(Decimal(repr(value)).normalize(), "f")
    return str(value)


def _rfc3339(text: object, name: str) -> str:
    """``lastmodified`` as sops formats it for the MAC (Go's time.RFC3339)."""
    try:
        when = datetime.fromisoformat(str(text))
    except ValueError:
        raise CorruptFile(f"{name}: sops.lastmodified {text!r} is not a time") from None
    offset = when.utcoffset()
    if offset is None:
        raise CorruptFile(f"{name}: sops.lastmodified {text!r} has no time zone")
    if not offset:
        return when.strftime("%Y-%m-%dT%H:%M:%SZ")
    zone = when.strftime("%z")
    return when.strftime("%Y-%m-%dT%H:%M:%S") + f"{zone[:3]}:{zone[3:]}"


class Loader(yaml.SafeLoader):
    """YAML as sops reads it for a flat file: timestamps stay text (``lastmodified``)."""


Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


class _Dumper(yaml.SafeDumper):
    """YAML laid out as sops writes it: four spaces, indented lists, armored keys as blocks."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)


def _block(dumper: yaml.SafeDumper, text: str) -> yaml.ScalarNode:
    style = "|" if "\n" in text else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", text, style=style)


_Dumper.add_representer(str, _block)
