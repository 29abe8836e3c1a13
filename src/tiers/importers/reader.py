"""A platform's file, read while remembering which keys were used.

An importer maps what it understands and must say what it left behind; reading through
``Tracked`` makes that list fall out: every leaf key nobody took is a leftover. A key the
importer reads but finds of the wrong type is an error naming where it is written.
"""

from __future__ import annotations

import stat
import tomllib
from collections.abc import Iterator
from datetime import date, datetime, time
from functools import cache
from pathlib import Path
from typing import Any, NoReturn

from tiers.config.source import Source, dotted, explain_decode_error, parse
from tiers.config.syntax import MAX_DEPTH
from tiers.errors import ConfigError, ImportFailed

KeyPath = tuple[str | int, ...]
Types = type | tuple[type, ...]

_MAX_BYTES = 1_000_000
"""A fly.toml is a few kilobytes; anything this large is not one (or is /dev/zero)."""
_MAX_DEPTH = MAX_DEPTH
"""A fly.toml nests a few levels; the TOML reader allows as many as tiers.toml does."""


def read_toml(path: Path) -> Tracked:
    """Parse a TOML file; a missing, unreadable or malformed one raises ImportFailed."""
    text = _text(path)
    _refuse_deep(path, text)
    try:
        tomllib.loads(text)
        return Tracked(parse(text, path))
    except tomllib.TOMLDecodeError as exc:
        line, column, reason = explain_decode_error(exc, text)
        raise ImportFailed(f"{path}:{line}:{column} invalid TOML: {reason}") from None
    except ConfigError as exc:
        raise ImportFailed(str(exc)) from None


def _text(path: Path) -> str:
    try:
        found = path.stat()
        if stat.S_ISDIR(found.st_mode):
            raise ImportFailed(f"{path}: is a directory, not a file")
        if not stat.S_ISREG(found.st_mode):
            raise ImportFailed(f"{path}: not a regular file (a pipe or a device); give a fly.toml")
        with path.open("rb") as handle:
            data = handle.read(_MAX_BYTES + 1)  # a file that says it is empty (/proc) may not be
        if len(data) > _MAX_BYTES:
            raise ImportFailed(f"{path}: over {_MAX_BYTES} bytes, too large for a fly.toml")
    except FileNotFoundError:
        raise ImportFailed(f"{path}: no such file") from None
    except OSError as exc:
        raise ImportFailed(f"{path}: cannot read: {exc.strerror or exc}") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        lines = data[: exc.start].split(b"\n")
        column = len(lines[-1].decode("utf-8", "replace")) + 1
        raise ImportFailed(f"{path}:{len(lines)}:{column} not UTF-8 text") from None


@cache
def _parser() -> Any:
    import tree_sitter_toml
    from tree_sitter import Language, Parser

    return Parser(Language(tree_sitter_toml.language()))


def _refuse_deep(path: Path, text: str) -> None:
    """Refuse lists, tables or keys nested past ``_MAX_DEPTH``, naming the first such key.

    tomllib recurses once per level of nested lists and inline tables, and so would any
    walk of what it returns; tree-sitter parses without recursing in Python, and the walk
    here keeps a stack of its own.
    """
    source = text.encode("utf-8")
    root = _parser().parse(source).root_node
    for table in [root, *(n for n in root.children if n.type.startswith("table"))]:
        keys = [c for c in table.children if c.type.endswith("key")]
        header = keys[0].text.decode("utf-8") if keys else ""
        for node in [*keys[:1], *(c for c in table.children if c.type == "pair")]:
            if _depth(node) <= _MAX_DEPTH:
                continue
            name = node.children[0].text.decode("utf-8") if node.type == "pair" else ""
            key = ".".join(filter(None, (header, name)))
            line, byte = node.start_point
            column = len(source.split(b"\n")[line][:byte].decode("utf-8", "replace")) + 1
            raise ImportFailed(
                f"{path}:{line + 1}:{column} {key if len(key) <= 60 else key[:57] + '...'}: "
                f"nested too deeply (over {_MAX_DEPTH} levels); "
                "a fly.toml needs a few levels of tables and lists at most"
            )


def _depth(node: Any) -> int:
    deepest, stack = 0, [(node, 0)]
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        stack.extend((child, depth + 1) for child in node.children)
    return deepest


class Tracked:
    """Parsed data plus the set of key paths an importer has taken from it."""

    def __init__(self, source: Source) -> None:
        self.source = source
        self.name = source.name
        self.data = source.data
        self.taken: set[KeyPath] = set()

    def peek(self, *key: str | int) -> Any:
        """The value at ``key`` (None when absent), without marking it used or checking it."""
        value: Any = self.data
        for part in key:
            if isinstance(part, int):
                if not isinstance(value, list) or part >= len(value):
                    return None
            elif not isinstance(value, dict) or part not in value:
                return None
            value = value[part]
        return value

    def get(self, *key: str | int, expect: Types) -> Any:
        """The value at ``key`` (None when absent), not marked used.

        A value that is not of the ``expect``-ed type, or a table on the way to it that is
        not a table, raises ImportFailed naming the file, line, column and key.
        """
        for end in range(1, len(key)):
            if isinstance(key[end], str):
                self.get(*key[:end], expect=dict)
        value = self.peek(*key)
        if value is not None and not _is(value, expect):
            self.fail(key, f"expected {_names(expect)}, not {_toml_type(value)}")
        return value

    def take(self, *key: str | int, expect: Types = object) -> Any:
        """The value at ``key``, checked as ``get`` does and marked used (with all under it)."""
        value = self.get(*key, expect=expect)
        if value is not None:
            self.taken.add(key)
        return value

    def tables(self, *key: str | int) -> list[tuple[KeyPath, dict[str, Any]]]:
        """``[x]`` or ``[[x]]`` alike: each table found at ``key`` with its path."""
        value = self.get(*key, expect=object)
        if value is None:
            return []
        if isinstance(value, dict):
            return [(key, value)]
        items = value if isinstance(value, list) else [value]
        wrong = [item for item in items if not isinstance(item, dict)]
        if wrong:
            names = ".".join(str(p) for p in key if isinstance(p, str))
            expected = f"a table ([{names}]) or tables ([[{names}]])"
            self.fail(key, f"expected {expected}, not {_toml_type(wrong[0])}")
        return [((*key, i), item) for i, item in enumerate(items)]

    def fail(self, key: KeyPath, message: str) -> NoReturn:
        line, column = self.source.locate(key)
        raise ImportFailed(f"{self.name}:{line}:{column} {dotted(key)}: {message}")

    def leftovers(self) -> list[str]:
        """Every key nobody took, one line per table: ``fly.toml [mounts] destination, source``."""
        groups: dict[str, list[str]] = {}
        for table, key in self._untaken():
            groups.setdefault(table, []).append(key)
        return [
            " ".join(filter(None, (self.name, table, ", ".join(keys))))
            for table, keys in groups.items()
        ]

    def _untaken(self) -> Iterator[tuple[str, str]]:
        # Depth first in file order, on a stack of its own: tables may nest deeper than
        # Python recurses (a dotted key of a thousand parts).
        stack: list[tuple[KeyPath, Any]] = [((), self.data)]
        while stack:
            at, table = stack.pop()
            if not isinstance(table, dict):
                yield self.label(at[:-1]), str(at[-1])
                continue
            children: list[tuple[KeyPath, Any]] = []
            for key, value in table.items():
                path = (*at, key)
                if any(path[:end] in self.taken for end in range(1, len(path) + 1)):
                    continue
                if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
                    children += [((*path, index), item) for index, item in enumerate(value)]
                else:
                    children.append((path, value if isinstance(value, dict) else None))
            stack.extend(reversed(children))

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


def _is(value: Any, expect: Types) -> bool:
    kinds = expect if isinstance(expect, tuple) else (expect,)
    if isinstance(value, bool):
        return bool in kinds or object in kinds
    return isinstance(value, kinds)


_NAMES: dict[type, str] = {
    str: "a string (in quotes)",
    int: "a whole number",
    float: "a number",
    bool: "a boolean",
    dict: "a table",
    list: "a list",
}


def _names(expect: Types) -> str:
    kinds = expect if isinstance(expect, tuple) else (expect,)
    names = [_NAMES[kind] for kind in kinds if not (kind is int and float in kinds)]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]


def _toml_type(value: Any) -> str:
    kinds: list[tuple[type | tuple[type, ...], str]] = [
        (bool, "a boolean"),
        ((int, float), "a number"),
        (str, "a string"),
        (list, "a list"),
        (dict, "a table"),
        ((datetime, date, time), "a date or time"),
    ]
    return next(name for kind, name in kinds if isinstance(value, kind))
