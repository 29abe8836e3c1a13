"""A tiers.toml under construction: tables of commented values, rendered with tomlkit.

Importers fill a ``Table`` tree; ``render`` turns it into commented TOML and ``verify``
proves the text loads as a tiers.toml before anyone writes it.
"""

from __future__ import annotations

import os
import re
import stat
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tiers.errors import ConfigError, ImportFailed, UsageError

# What tiers.toml would read as a reference: ${x}, and $${x} (a literal ${x}).
_REFERENCE = re.compile(r"\$\$?\{[^}]*\}")


@dataclass(frozen=True)
class Entry:
    """One value and the comment written after it.

    Strings are written so that they load as given: a ``${PORT}`` in a platform's
    command becomes ``$${PORT}``. Only a ``reference`` is left for tiers to resolve.
    """

    value: Any
    comment: str = ""
    reference: bool = False


@dataclass
class Table:
    """A TOML table: values first, then comment lines, then sub-tables."""

    entries: dict[str, Entry | Table] = field(default_factory=dict)
    comments: list[str] = field(default_factory=list)
    """Lines written after the values (a hint, a commented-out example)."""
    title: str = ""
    """Written after the table's header: ``[environments.staging.backend]  # from fly.toml``."""

    def set(self, key: str, value: Any, comment: str = "", *, reference: bool = False) -> None:
        self.entries[key] = Entry(value, comment, reference)

    def table(self, key: str) -> Table:
        """The sub-table ``key``, created empty if needed."""
        found = self.entries.setdefault(key, Table())
        assert isinstance(found, Table)
        return found


@dataclass(frozen=True)
class Imported:
    """What an importer produced: the tiers.toml text and what the user should know."""

    text: str
    environments: list[str]
    unmapped: list[str]
    """Keys of the platform files that have no place in tiers.toml, one line per table."""
    notes: list[str]
    """Assumptions made and what is left to do."""


def render(header: list[str], root: Table) -> str:
    import tomlkit

    doc = tomlkit.document()
    for line in header:
        doc.add(tomlkit.comment(line) if line else tomlkit.nl())
    doc.add(tomlkit.nl())
    for key, value in root.entries.items():
        assert isinstance(value, Table), "the root holds tables only"
        doc.add(key, _table(value))
    return tomlkit.dumps(doc)


def _table(table: Table) -> Any:
    import tomlkit

    values = {k: v for k, v in table.entries.items() if isinstance(v, Entry)}
    subtables = {k: v for k, v in table.entries.items() if isinstance(v, Table)}
    out = tomlkit.table(is_super_table=not values and not table.comments and not table.title)
    if table.title:
        out.comment(table.title)
    for key, entry in values.items():
        out.add(key, _item(entry.value if entry.reference else _literal(entry.value)))
        if entry.comment:
            out[key].comment(entry.comment)
    if table.comments:
        out.add(tomlkit.nl())
    for line in table.comments:
        out.add(tomlkit.comment(line))
    for key, sub in subtables.items():
        out.add(key, _table(sub))
    return out


def _item(value: Any) -> Any:
    import tomlkit

    if isinstance(value, dict):
        inline = tomlkit.inline_table()
        for key, item in value.items():
            inline.append(key, _item(item))  # nested tables spaced like the outer one
        return inline
    return tomlkit.item(value)


def _literal(value: Any) -> Any:
    if isinstance(value, str):
        return _REFERENCE.sub(lambda match: "$" + match.group(0), value)
    if isinstance(value, dict):
        return {key: _literal(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_literal(item) for item in value]
    return value


def check_target(target: Path, inputs: Sequence[Path], *, overwrite: bool) -> None:
    """Refuse to write over one of the ``inputs``, or over any file unless ``overwrite``.

    A target that cannot even be looked at (a name too long, a folder one may not enter)
    raises UsageError naming it; an input's such problem is reported when it is read.
    """
    found = _stat(target, strict=True)
    if found is None:
        return
    if stat.S_ISDIR(found.st_mode):
        raise UsageError(f"cannot write {target}: it is a directory")
    for path in inputs:
        other = _stat(path, strict=False)
        if other is not None and os.path.samestat(found, other):
            given = f" ({path})" if path != target else ""
            raise UsageError(
                f"{target} is one of the files to import{given}; "
                "write the tiers.toml elsewhere with -c PATH"
            )
    if not overwrite:
        raise UsageError(f"{target} already exists; pass --force to overwrite it")


def _stat(path: Path, *, strict: bool) -> os.stat_result | None:
    try:
        return path.stat()
    except FileNotFoundError:
        return None
    except OSError as exc:  # a name too long, a folder one may not enter, a file as a folder
        if strict:
            raise UsageError(f"cannot write {path}: {exc.strerror or exc}") from None
        return None


def verify(text: str, target: Path) -> None:
    """Load ``text`` as tiers.toml; a problem raises ImportFailed (a bug or odd input)."""
    from tiers.config import load

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "tiers.toml"  # not the target's name, which may be too long
        path.write_text(text, encoding="utf-8")
        try:
            load(path)
        except ConfigError as exc:
            message = str(exc).replace(str(path), str(target))
            raise ImportFailed(f"the imported tiers.toml would not load:\n{message}") from None
