"""A platform's file, read while remembering which keys were used.

An importer maps what it understands and must say what it left behind; reading through
``Tracked`` makes that list fall out: every leaf key nobody took is a leftover.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tiers.config.source import explain_decode_error
from tiers.errors import ImportFailed

KeyPath = tuple[str | int, ...]


def read_toml(path: Path) -> dict[str, Any]:
    """Parse a TOML file; a missing or malformed one raises ImportFailed naming where."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ImportFailed(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ImportFailed(f"{path}: cannot read: {exc}") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        line, column, reason = explain_decode_error(exc, text)
        raise ImportFailed(f"{path}:{line}:{column} invalid TOML: {reason}") from None


class Tracked:
    """Parsed data plus the set of key paths an importer has taken from it."""

    def __init__(self, name: str, data: dict[str, Any]) -> None:
        self.name = name
        self.data = data
        self.taken: set[KeyPath] = set()

    def peek(self, *key: str | int) -> Any:
        """The value at ``key`` (None when absent), without marking it used."""
        value: Any = self.data
        for part in key:
            if isinstance(part, int):
                if not isinstance(value, list) or part >= len(value):
                    return None
            elif not isinstance(value, dict) or part not in value:
                return None
            value = value[part]
        return value

    def take(self, *key: str | int) -> Any:
        """The value at ``key``, marked used (with everything under it)."""
        value = self.peek(*key)
        if value is not None:
            self.taken.add(key)
        return value

    def tables(self, *key: str | int) -> list[tuple[KeyPath, dict[str, Any]]]:
        """``[x]`` or ``[[x]]`` alike: each table found at ``key`` with its path."""
        value = self.peek(*key)
        if isinstance(value, dict):
            return [(key, value)]
        if isinstance(value, list):
            return [((*key, i), v) for i, v in enumerate(value) if isinstance(v, dict)]
        return []

    def leftovers(self) -> list[str]:
        """Every key nobody took, one line per table: ``fly.toml [mounts] destination, source``."""
        groups: dict[str, list[str]] = {}
        for table, key in self._untaken(self.data, ()):
            groups.setdefault(table, []).append(key)
        return [
            " ".join(filter(None, (self.name, table, ", ".join(keys))))
            for table, keys in groups.items()
        ]

    def _untaken(self, table: dict[str, Any], at: KeyPath) -> Iterator[tuple[str, str]]:
        for key, value in table.items():
            path = (*at, key)
            if any(path[:end] in self.taken for end in range(1, len(path) + 1)):
                continue
            if isinstance(value, dict):
                yield from self._untaken(value, path)
            elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
                for index, item in enumerate(value):
                    yield from self._untaken(item, (*path, index))
            else:
                yield self.label(at), key

    def label(self, at: KeyPath) -> str:
        """``("http_service", "checks", 1)`` → ``[[http_service.checks]] #2``.

        An entry of an array of tables is numbered only when the array has several.
        """
        if not at:
            return ""
        names = ".".join(str(p) for p in at if isinstance(p, str))
        if not isinstance(at[-1], int):
            return f"[{names}]"
        siblings = self.peek(*at[:-1])
        return f"[[{names}]]" + (f" #{at[-1] + 1}" if len(siblings) > 1 else "")
