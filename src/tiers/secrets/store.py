"""A project's secrets: one SOPS file per environment under ``secrets/`` beside tiers.toml.

``secrets/<env>.yaml`` holds one tier's values, its data key wrapped for that tier's
recipients only (the people allowed to read the tier and its CI key): a staging key does
not open production. ``secrets/_fingerprint.yaml`` holds the project's fingerprint key
for the recipients of every tier (:mod:`tiers.secrets.fingerprints`). Every write goes
through a temporary file and a rename, and is refused before anything is written when
the input is unusable.
"""

from __future__ import annotations

import getpass
import os
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from tiers import git
from tiers.errors import UsageError
from tiers.files import atomic_write
from tiers.secrets import fingerprints, keys, sops
from tiers.secrets.tier import Entry, Opened, TierFile, Unreadable, check_name

__all__ = ["DIRECTORY", "Diff", "Generated", "Store"]

DIRECTORY = "secrets"
FINGERPRINT_FILE = "_fingerprint.yaml"  # never an environment's name: those start [a-z0-9]
_SLUG = re.compile(r"[a-z0-9][a-z0-9_-]*")
_OTHER_KEY_TYPES = ("pgp", "kms", "gcp_kms", "hckms", "azure_kv", "hc_vault")


@dataclass(frozen=True)
class Diff:
    """Two tiers' secrets compared by name and fingerprint, never by value."""

    a: str
    b: str
    only_a: list[str]
    only_b: list[str]
    same: list[str]
    """In both, with the same value: for most secrets, a reuse to fix."""
    different: list[str]
    unknown: list[str]
    """In both, but one has no fingerprint yet (set by plain sops)."""

    def to_json(self) -> dict[str, object]:
        return {
            "a": self.a,
            "b": self.b,
            "only_in_a": self.only_a,
            "only_in_b": self.only_b,
            "same_value": self.same,
            "different_value": self.different,
            "unknown": self.unknown,
        }


@dataclass
class Generated:
    """What ``generate`` did in each tier: ``created`` or ``replaced``, or why it skipped."""

    done: dict[str, str] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)


class Store:
    """The secrets of the project in ``project_dir``, for the environments it declares.

    With ``environments=None`` any environment name is taken (to read a file a caller
    already validated the name of).
    """

    def __init__(self, project_dir: Path, environments: Sequence[str] | None = None) -> None:
        self.project_dir = project_dir
        self.environments = list(environments) if environments is not None else None

    @classmethod
    def for_config(cls, config: Path) -> Store:
        """The store beside a tiers.toml, for the environments it declares."""
        from tiers.config import load

        environments = load(config).config.environments
        return cls(config.resolve().parent, list(environments))

    # --- paths and files

    def path(self, environment: str) -> Path:
        """``secrets/<env>.yaml``; an environment tiers.toml does not declare is refused."""
        if self.environments is not None and environment not in self.environments:
            known = ", ".join(self.environments) or "none"
            raise UsageError(f"no environment {environment!r} in tiers.toml; known: {known}")
        if not _SLUG.fullmatch(environment):
            raise UsageError(f"{environment!r} is not an environment name")
        return self.project_dir / DIRECTORY / f"{environment}.yaml"

    def exists(self, environment: str) -> bool:
        return self.path(environment).exists()

    def tier(self, environment: str) -> TierFile:
        path = self.path(environment)
        if not path.exists():
            raise UsageError(
                f"{environment} has no secrets yet ({self._shown(path)} does not exist); "
                f"run `tiers secrets init {environment}`"
            )
        return TierFile.read(environment, path, self._shown(path))

    def open(self, environment: str) -> Opened:
        return self.tier(environment).open(keys.identities())

    # --- reads

    def values(self, environment: str) -> dict[str, str]:
        return self.open(environment).values

    def entries(self, environment: str) -> list[Entry]:
        return self.tier(environment).entries()

    def recipients(self, environment: str) -> list[str]:
        return self.tier(environment).recipients

    def diff(self, a: str, b: str) -> Diff:
        left = {e.name: e for e in self.entries(a)}
        right = {e.name: e for e in self.entries(b)}
        both = [name for name in left if name in right]
        known = [n for n in both if left[n].fingerprint and right[n].fingerprint]
        return Diff(
            a,
            b,
            only_a=[n for n in left if n not in right],
            only_b=[n for n in right if n not in left],
            same=[n for n in known if left[n].fingerprint == right[n].fingerprint],
            different=[n for n in known if left[n].fingerprint != right[n].fingerprint],
            unknown=[n for n in both if n not in known],
        )

    # --- writes

    def init(self, environment: str) -> tuple[keys.Identity, bool, bool]:
        """This user's key (made if none) and the tier's file (made if none, for that key).

        Returns the key, whether it was made, and whether the file was.
        """
        path = self.path(environment)
        held = keys.identities()
        made_key = not held
        own = _own(held) if held else keys.make_key()
        if path.exists():
            self.tier(environment)  # a broken file is reported, not papered over
            return own, made_key, False
        held = held or [own]
        fp_key = self._fingerprint_key(held)
        data_key = os.urandom(32)
        opened = Opened({}, {}, data_key, [(own.public, keys.wrap(data_key, own.public))])
        self._write(environment, opened, fp_key)
        return own, made_key, True

    def set(self, environment: str, values: dict[str, str]) -> dict[str, str]:
        """Set each value; returns ``name → created|replaced|unchanged``."""
        for name, value in values.items():
            _check_value(name, value)
        opened, fp_key = self._open_for_writing(environment)
        changes, now, who = {}, _now(), self._who()
        for name, value in values.items():
            before = opened.values.get(name)
            changes[name] = "created" if before is None else "replaced"
            if before == value:
                changes[name] = "unchanged"
                continue
            opened.values[name] = value
            opened.set_at(name, now, who)
        self._write(environment, opened, fp_key)
        return changes

    def remove(self, environment: str, name: str) -> None:
        opened, fp_key = self._open_for_writing(environment)
        if name not in opened.values:
            have = ", ".join(opened.values) or "none"
            raise UsageError(f"{environment} has no secret {name}; it has: {have}")
        del opened.values[name]
        opened.entries.pop(name, None)
        self._write(environment, opened, fp_key)

    def replace_all(self, environment: str, opened: Opened, values: dict[str, str]) -> None:
        """Make the tier hold exactly ``values`` (an edit of ``opened``'s)."""
        for name, value in values.items():
            _check_value(name, value)
        fp_key = self._fingerprint_key(keys.identities())
        for name in set(opened.values) - set(values):
            opened.entries.pop(name, None)
        now, who = _now(), self._who()
        for name, value in values.items():
            if opened.values.get(name) != value:
                opened.set_at(name, now, who)
        opened.values = dict(values)
        self._write(environment, opened, fp_key)

    def generate(
        self, environments: Iterable[str], name: str, make: Callable[[], str]
    ) -> Generated:
        """A new random value (``make()``) in each of ``environments`` that can be written.

        Each tier gets its own value. A tier whose file this user cannot open, or that has
        none, is skipped and said so; when none can be written, nothing is.
        """
        check_name(name)
        result = Generated()
        for environment in environments:
            if not self.exists(environment):
                result.skipped[environment] = f"no {self._shown(self.path(environment))}"
                continue
            try:
                self.open(environment)
            except Unreadable:
                result.skipped[environment] = "no identity here can read it"
                continue
            result.done[environment] = self.set(environment, {name: make()})[name]
        if not result.done:
            why = "; ".join(f"{env}: {reason}" for env, reason in result.skipped.items())
            raise UsageError(f"no tier here can be written, so {name} was set nowhere ({why})")
        return result

    def rotate(self, environment: str) -> None:
        """A new data key: every value re-encrypted, the key re-wrapped for each recipient."""
        opened, fp_key = self._open_for_writing(environment)
        self._rekey(opened)
        self._write(environment, opened, fp_key)

    def add_recipient(self, environment: str, recipient: str) -> bool:
        """Wrap the tier's data key for one more recipient (sops ``updatekeys``).

        Returns False when it was one already (the fingerprint key is still re-wrapped,
        which mends a recipient added by plain sops).
        """
        recipient = keys.check_recipient(recipient)
        opened, fp_key = self._open_for_writing(environment)
        if recipient in [r for r, _ in opened.stanzas]:
            self._sync_fingerprint_key(fp_key, self._readers(environment, opened))
            return False
        opened.stanzas = [*opened.stanzas, (recipient, keys.wrap(opened.data_key, recipient))]
        self._write(environment, opened, fp_key)
        return True

    def remove_recipient(self, environment: str, recipient: str) -> None:
        """Take a recipient off, with a new data key it never saw (values re-encrypted)."""
        opened, fp_key = self._open_for_writing(environment)
        left = [(r, enc) for r, enc in opened.stanzas if r != recipient]
        if len(left) == len(opened.stanzas):
            have = ", ".join(r for r, _ in opened.stanzas)
            raise UsageError(
                f"{recipient} is not a recipient of {environment}; its recipients: {have}"
            )
        if not left:
            raise UsageError(
                f"{recipient} is {environment}'s only recipient: no one could read it; "
                f"add another first (tiers secrets recipients add {environment} AGE_PUBLIC_KEY)"
            )
        opened.stanzas = left
        self._rekey(opened)
        self._write(environment, opened, fp_key)

    # --- helpers

    def _open_for_writing(self, environment: str) -> tuple[Opened, bytes]:
        held = keys.identities()
        opened = self.tier(environment).open(held)
        return opened, self._fingerprint_key(held)

    def _write(self, environment: str, opened: Opened, fp_key: bytes) -> None:
        for name, value in opened.values.items():
            opened.fingerprint(name, fingerprints.of(fp_key, value))
        text = opened.encode()
        readers = self._readers(environment, opened)  # every tier file read before any write
        atomic_write(self.path(environment), text)
        self._sync_fingerprint_key(fp_key, readers)

    @staticmethod
    def _rekey(opened: Opened) -> None:
        others = [k for k in _OTHER_KEY_TYPES if (opened.meta or {}).get(k)]
        if others:  # they wrap the data key too, and tiers cannot wrap a new one for them
            raise UsageError(
                f"{opened.shown} also has {', '.join(others)} keys, which tiers cannot "
                "wrap a new data key for; rotate it with `sops rotate -i`"
            )
        opened.data_key = os.urandom(32)
        opened.stanzas = [(r, keys.wrap(opened.data_key, r)) for r, _ in opened.stanzas]
        opened.stash = {}

    def _fingerprint_path(self) -> Path:
        return self.project_dir / DIRECTORY / FINGERPRINT_FILE

    def _fingerprint_key(self, held: list[keys.Identity]) -> bytes:
        """The project's fingerprint key; a new one if it has none yet (files sops made)."""
        path = self._fingerprint_path()
        if not path.exists():
            if any(e.fingerprint for tier in self._tiers() for e in tier.entries()):
                shown = self._shown(path)
                raise UsageError(
                    f"{shown} is missing, yet the tiers hold fingerprints made with its key; "
                    f"restore it from git (git checkout -- {shown})"
                )
            return fingerprints.new_key()
        tier = TierFile.read("fingerprint", path, self._shown(path))
        what = f"the project's fingerprint key ({tier.shown})"
        opened = tier.open(held, what)
        key = fingerprints.parse_key(opened.values.get(fingerprints.KEY_NAME, ""))
        if key is None:
            raise UsageError(
                f"{tier.shown} holds no fingerprint key; restore it from git "
                f"(git checkout -- {tier.shown})"
            )
        return key

    def _readers(self, environment: str, opened: Opened) -> list[str]:
        """The recipients of every tier's file, with ``opened``'s in place of its tier's."""
        readers = [r for r, _ in opened.stanzas]
        for tier in self._tiers():
            if tier.environment != environment:
                readers += [r for r in tier.recipients if r not in readers]
        return readers

    def _tiers(self) -> list[TierFile]:
        """Every tier's file under secrets/, whether tiers.toml still declares it or not."""
        return [
            TierFile.read(path.stem, path, self._shown(path))
            for path in sorted((self.project_dir / DIRECTORY).glob("*.yaml"))
            if _SLUG.fullmatch(path.stem)
        ]

    def _sync_fingerprint_key(self, fp_key: bytes, readers: list[str]) -> None:
        """Wrap the fingerprint key for exactly ``readers``, unless it is already."""
        path = self._fingerprint_path()
        if path.exists():
            current = TierFile.read("fingerprint", path, self._shown(path)).recipients
            if sorted(current) == sorted(readers):
                return
        data_key = os.urandom(32)
        stanzas = [(r, keys.wrap(data_key, r)) for r in readers]
        values: dict[str, sops.Scalar] = {fingerprints.KEY_NAME: fingerprints.serialize_key(fp_key)}
        atomic_write(path, sops.encode(values, data_key, stanzas))

    def _who(self) -> str:
        return git.user_email(self.project_dir) or _login()

    def _shown(self, path: Path) -> str:
        try:
            return str(path.relative_to(Path.cwd()))
        except ValueError:
            return str(path)


def _own(held: list[keys.Identity]) -> keys.Identity:
    """This user's key among those held: the one in tiers' keys.txt, else the first."""
    mine = keys.shown(keys.keys_file())
    return next((i for i in held if i.source == mine), held[0])


def _check_value(name: str, value: str) -> None:
    check_name(name)
    if value == "":
        raise UsageError(f"{name}: the value is empty; remove a secret with `tiers secrets rm`")
    if "\0" in value:
        raise UsageError(f"{name}: the value holds a NUL character, which no environment can")


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _login() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no login name for this uid (a bare container)
        return f"uid {os.getuid()}"
