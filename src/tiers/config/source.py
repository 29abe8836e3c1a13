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
        """Line and column of ``key``, or of its nearest ancestor written in the file."""
        for end in range(len(key), 0, -1):
            if key[:end] in self.positions:
                return self.positions[key[:end]]
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
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        hint = "run `tiers init` to write one, or pass --config PATH"
        raise ConfigError([Problem(str(path), 1, 1, "", f"no such file; {hint}")]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([Problem(str(path), 1, 1, "", f"cannot read: {exc}")]) from None
    return parse(text, path)


def parse(text: str, path: Path) -> Source:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        line, column = _decode_error_position(exc)
        message = str(exc).split(" (at ")[0]
        raise ConfigError(
            [Problem(str(path), line, column, "", f"invalid TOML: {message}")]
        ) from None
    return Source(path, text, data, _positions(text))


def _decode_error_position(exc: tomllib.TOMLDecodeError) -> Position:
    # tomllib formats positions as "(at line 3, column 7)" or "(at end of document)".
    message = str(exc)
    if "(at line " in message:
        where = message.rsplit("(at line ", 1)[1].rstrip(")")
        line, column = where.split(", column ")
        return int(line), int(column)
    return message.count("\n") + 1, 1


@cache
def _parser() -> Any:
    import tree_sitter_toml
    from tree_sitter import Language, Parser

    return Parser(Language(tree_sitter_toml.language()))


def _positions(text: str) -> dict[Key, Position]:
    tree = _parser().parse(text.encode("utf-8"))
    found: dict[Key, Position] = {}
    array_counts: dict[Key, int] = {}
    for node in tree.root_node.children:
        if node.type in ("table", "table_array_element"):
            header = _header_key(node, array_counts)
            found.setdefault(header, _pos(node))
            for child in node.children:
                if child.type == "pair":
                    _pair(child, header, found)
        elif node.type == "pair":
            _pair(node, (), found)
    return found


def _header_key(node: Any, array_counts: dict[Key, int]) -> Key:
    names = next(_key_names(c) for c in node.children if c.type.endswith("key"))
    key: Key = ()
    for name in names:
        key = (*key, name)
        if key in array_counts:  # a sub-table of the last element of an array of tables
            key = (*key, array_counts[key] - 1)
    if node.type == "table_array_element":
        base = key[:-1] if isinstance(key[-1], int) else key
        array_counts[base] = array_counts.get(base, 0) + 1
        key = (*base, array_counts[base] - 1)
    return key


def _pair(node: Any, prefix: Key, found: dict[Key, Position]) -> None:
    key_node = node.children[0]
    value = node.children[-1]
    key = (*prefix, *_key_names(key_node))
    found.setdefault(key, _pos(key_node))
    _value(value, key, found)


def _value(node: Any, key: Key, found: dict[Key, Position]) -> None:
    if node.type == "inline_table":
        for child in node.children:
            if child.type == "pair":
                _pair(child, key, found)
    elif node.type == "array":
        items = [c for c in node.children if c.is_named and c.type != "comment"]
        for index, item in enumerate(items):
            found.setdefault((*key, index), _pos(item))
            _value(item, (*key, index), found)


def _key_names(node: Any) -> list[str]:
    if node.type == "dotted_key":
        return [name for child in node.children if child.is_named for name in _key_names(child)]
    text = node.text.decode("utf-8")
    if node.type == "quoted_key":
        return [next(iter(tomllib.loads(f"{text} = 0")))]
    return [text]


def _pos(node: Any) -> Position:
    return node.start_point[0] + 1, node.start_point[1] + 1
