"""Reading tiers.toml: values through ``tomllib``, positions through tree-sitter.

``tomllib`` is the reference parser but keeps no positions, so a second pass over the
tree-sitter concrete syntax tree maps every key path to the line and column it was
written at. Error messages and check findings then point at the exact spot.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from tiers.errors import ConfigError, Problem

Key = tuple[str | int, ...]
Position = tuple[int, int]  # 1-based line and column


@dataclass
class Source:
    """A parsed TOML file: its data and where each key path was written."""

    path: Path
    text: str
    data: dict[str, Any]
    positions: dict[Key, Position] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return str(self.path)

    def locate(self, key: Key) -> Position:
        """Line and column of ``key``; else of its nearest ancestor written in the file,
        or failing that the first place a table inside that ancestor was written."""
        for end in range(len(key), 0, -1):
            if key[:end] in self.positions:
                return self.positions[key[:end]]
            inside = [p for k, p in self.positions.items() if k[:end] == key[:end]]
            if inside:
                return min(inside)
        return (1, 1)

    def problem(self, key: Key, message: str) -> Problem:
        line, column = self.locate(key)
        return Problem(self.name, line, column, dotted(key), message)


def dotted(key: Key) -> str:
    """``("environments", "staging", "bypass", 0)`` → ``environments.staging.bypass[0]``."""
    out = ""
    for part in key:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


def read(path: Path) -> Source:
    """Parse ``path``; a missing or malformed file raises ConfigError with its position."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        hint = "run `tiers init` to write one, or pass --config PATH"
        raise ConfigError([Problem(str(path), 1, 1, "", f"no such file; {hint}")]) from None
    except IsADirectoryError:
        raise ConfigError([Problem(str(path), 1, 1, "", "is a directory, not a file")]) from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else f"not UTF-8 text ({exc.reason})"
        raise ConfigError([Problem(str(path), 1, 1, "", f"cannot read: {reason}")]) from None
    return parse(text, path)


def parse(text: str, path: Path) -> Source:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        line, column, reason = explain_decode_error(exc, text)
        problem = Problem(str(path), line, column, "", f"invalid TOML: {reason}")
        raise ConfigError([problem]) from None
    return Source(path, text, data, _Positions(text).found)


def explain_decode_error(exc: tomllib.TOMLDecodeError, text: str) -> tuple[int, int, str]:
    """Line, column and reason of a TOML syntax error.

    tomllib ends its message with "(at line 3, column 7)" or "(at end of document)".
    """
    reason, _, where = str(exc).rpartition(" (at ")
    if where.startswith("line "):
        line, column = where.removeprefix("line ").rstrip(")").split(", column ")
        return int(line), int(column), reason
    lines = text.split("\n")
    return len(lines), len(lines[-1]) + 1, reason or str(exc)


@cache
def _parser() -> Any:
    import tree_sitter_toml
    from tree_sitter import Language, Parser

    return Parser(Language(tree_sitter_toml.language()))


class _Positions:
    """Walk the tree-sitter syntax tree and note where every key path is written."""

    def __init__(self, text: str) -> None:
        source = text.encode("utf-8")
        self.lines = source.split(b"\n")
        self.found: dict[Key, Position] = {}
        self.array_counts: dict[Key, int] = {}
        for node in _parser().parse(source).root_node.children:
            if node.type in ("table", "table_array_element"):
                header = self.header(node)
                self.found.setdefault(header, self.pos(node))
                for child in node.children:
                    if child.type == "pair":
                        self.pair(child, header)
            elif node.type == "pair":
                self.pair(node, ())

    def header(self, node: Any) -> Key:
        names = next(_key_names(c) for c in node.children if c.type.endswith("key"))
        key: Key = ()
        for name in names:
            key = (*key, name)
            if key in self.array_counts:  # a sub-table of the last element of an array
                key = (*key, self.array_counts[key] - 1)
        if node.type == "table_array_element":
            base = key[:-1] if isinstance(key[-1], int) else key
            self.array_counts[base] = self.array_counts.get(base, 0) + 1
            key = (*base, self.array_counts[base] - 1)
        return key

    def pair(self, node: Any, prefix: Key) -> None:
        key_node, value = node.children[0], node.children[-1]
        key = (*prefix, *_key_names(key_node))
        self.found.setdefault(key, self.pos(key_node))
        self.value(value, key)

    def value(self, node: Any, key: Key) -> None:
        if node.type == "inline_table":
            for child in node.children:
                if child.type == "pair":
                    self.pair(child, key)
        elif node.type == "array":
            items = [c for c in node.children if c.is_named and c.type != "comment"]
            for index, item in enumerate(items):
                self.found.setdefault((*key, index), self.pos(item))
                self.value(item, (*key, index))

    def pos(self, node: Any) -> Position:
        # tree-sitter counts columns in bytes; people count characters.
        line, byte = node.start_point
        return line + 1, len(self.lines[line][:byte].decode("utf-8", "replace")) + 1


def _key_names(node: Any) -> list[str]:
    if node.type == "dotted_key":
        return [name for child in node.children if child.is_named for name in _key_names(child)]
    text = node.text.decode("utf-8")
    if node.type == "quoted_key":
        return [next(iter(tomllib.loads(f"{text} = 0")))]
    return [text]
