"""TOML text to data and key positions, with every failure told in tiers' words.

``tomllib`` is the reference parser but keeps no positions, so a second pass over the
tree-sitter concrete syntax tree maps every key path to the line and column it was
written at. ``tomllib`` recurses once per level of nested arrays and inline tables and
takes quadratic time over the parts of a dotted key, so nesting is bounded before it
runs (``MAX_DEPTH``); its messages are reworded here, each with a position.
"""

from __future__ import annotations

import ast
import json
import re
import sys
import tomllib
from collections.abc import Iterator
from functools import cache
from typing import Any

Key = tuple[str | int, ...]
Position = tuple[int, int]  # 1-based line and column, in characters

MAX_DEPTH = 32
"""Levels of tables, keys and lists a tiers.toml may nest; real ones use about six."""


class TomlProblem(Exception):
    """Where and what; ``key`` (a dotted path) is empty when no key is to blame."""

    def __init__(self, position: Position, key: str, message: str) -> None:
        super().__init__(message)
        self.position = position
        self.key = key
        self.message = message


def loads(text: str) -> tuple[dict[str, Any], dict[Key, Position]]:
    """The data of ``text`` and where each key path is written; raises TomlProblem."""
    _check_nesting(text)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        position, key, message = describe(exc, text)
        raise TomlProblem(position, key, message) from None
    except ValueError:  # an integer with more digits than int() takes
        raise _long_number(text) from None
    found = Positions(text).found
    deepest = max(found, key=len, default=())
    if len(deepest) > MAX_DEPTH:
        raise TomlProblem(found[deepest], f"{dotted(deepest[:3])}…", _too_deep(len(deepest)))
    return data, found


def _too_deep(levels: int) -> str:
    return f"nested {levels} levels deep; tiers.toml allows at most {MAX_DEPTH}"


# Strings, comments, (dotted) keys and brackets, lexed as tomllib lexes them, so that
# brackets inside strings do not count and every dotted key is seen whole.
_PART = r"""[A-Za-z0-9_-]+|"(?:[^"\\\n]|\\.)*"|'[^'\n]*'"""
_TOKENS = re.compile(
    r'"""[^\\"]*+(?:(?:\\[\s\S]|"(?!""))[^\\"]*+)*+"{3,5}'
    r"|'''[^']*+(?:'(?!'')[^']*+)*+'{3,5}"
    r"|(?P<open>\"\"\"|''')"  # a multi-line string that is never closed
    rf"|(?P<run>(?:{_PART})(?:[ \t]*\.[ \t]*(?:{_PART}))*+)"
    r"|\#[^\n]*"
    r"|(?P<quote>[\"'])"  # a one-line string that is never closed
    r"|[\[\]{}]"
)


def _check_nesting(text: str) -> None:
    depth = 0
    for match in _TOKENS.finditer(text):
        token = match.group()
        if token in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                raise TomlProblem(_position(text, match.start()), "", _too_deep(_depth(text)))
        elif token in "]}":
            depth = max(depth - 1, 0)
        elif match.lastgroup == "run" and "." in token:
            parts = len(re.findall(_PART, token))
            if parts > MAX_DEPTH:
                raise TomlProblem(_position(text, match.start()), "", _too_deep(parts))


def _depth(text: str) -> int:
    depth = deepest = 0
    for match in _TOKENS.finditer(text):
        depth += {"[": 1, "{": 1, "]": -1, "}": -1}.get(match.group(), 0)
        depth, deepest = max(depth, 0), max(depth, deepest)
    return deepest


def _position(text: str, index: int) -> Position:
    return text.count("\n", 0, index) + 1, index - text.rfind("\n", 0, index)


def _index(text: str, position: Position) -> int:
    line, column = position
    start = 0
    for _ in range(line - 1):
        start = text.index("\n", start) + 1
    return start + column - 1


def explain_decode_error(exc: tomllib.TOMLDecodeError, text: str) -> tuple[int, int, str]:
    """Line, column and tomllib's own reason (for files other than tiers.toml)."""
    reason, _, where = str(exc).rpartition(" (at ")
    if where.startswith("line "):
        line, column = where.removeprefix("line ").rstrip(")").split(", column ")
        return int(line), int(column), reason
    return (*_position(text, len(text)), reason or str(exc))


def describe(exc: tomllib.TOMLDecodeError, text: str) -> tuple[Position, str, str]:
    """Position, key path (when known) and message for what tomllib refused.

    tomllib ends its message with "(at line 3, column 7)" or "(at end of document)".
    """
    reason, _, where = str(exc).rpartition(" (at ")
    if where.startswith("line "):
        line, column = where.removeprefix("line ").rstrip(")").split(", column ")
        index = _index(text, (int(line), int(column)))
    else:
        reason, index = reason or str(exc), len(text)
    if reason.startswith(_CLASHES):
        return _clash(text, index, reason)
    bad = text[index : index + 1]
    if reason in ("Unterminated string", "Expected \"'''\""):
        message = "this string is never closed"
        index = _opening(text, index, strings=True)
    elif reason == "Unclosed array" and not text[index:].strip():
        message = "this list is never closed; close it with ]"
        index = _opening(text, index, strings=False)
    elif reason == 'Expected "\'"' or (
        bad == "\n" and reason.startswith(("Illegal character", "Found invalid character"))
    ):
        message = 'this string is not closed on its line; close it, or use """ for several lines'
        index = _opening(text, index, strings=True)
    elif bad and (bad < " " or bad == "\x7f") and bad not in "\t\n":
        message = (
            f"the control character U+{ord(bad):04X} is not allowed here; remove it, "
            f'or write it as \\u{ord(bad):04x} inside a "string"'
        )
    elif reason.startswith("Unescaped '\\'"):
        index = text.rfind("\\", 0, index)
        message = (
            f"{text[index : index + 2].strip()} is not an escape; write \\\\ for a backslash, "
            "or use a 'literal string', where backslashes are plain"
        )
    elif _DATE.match(text, _word_start(text, index)):
        index = _word_start(text, index)
        message = "not a valid date or time; write them like 2024-01-31 or 2024-01-31T09:30:00Z"
    else:
        message = _REWORDED.get(reason, reason)
    return _position(text, index), "", f"invalid TOML: {message}"


_DATE = re.compile(r"\d{4}-\d|\d\d:\d")


def _word_start(text: str, index: int) -> int:
    return max(text.rfind(c, 0, index) for c in " \t\n=[,{") + 1


def _opening(text: str, index: int, *, strings: bool) -> int:
    """Where the string (or else the list) that is still open at ``index`` began."""
    opened: list[int] = []
    lists: list[int] = []
    for match in _TOKENS.finditer(text, 0, index):
        if match.lastgroup in ("open", "quote"):
            opened.append(match.start())
        elif match.group() in "[{":
            lists.append(match.start())
        elif match.group() in "]}" and lists:
            lists.pop()
    found = opened if strings else lists
    return found[-1] if found else index


_CLASHES = (
    "Cannot declare",
    "Cannot overwrite a value",
    "Cannot mutate immutable namespace",
    "Cannot redefine namespace",
    "Duplicate inline table key",
)
_VALUE = 'a "string", a number, true or false, a date, a [list] or a { table }'
_REWORDED = {
    "Invalid statement": "expected `key = value`, a [table] header or a # comment",
    "Expected newline or end of document after a statement": (
        "expected the end of the line; write one `key = value` per line, text in quotes"
    ),
    "Expected '=' after a key in a key/value pair": (
        "expected `=` after the key; quote a key that has spaces or other symbols"
    ),
    "Invalid initial character for a key part": (
        'expected a key: letters, digits, - and _, or a "quoted key"'
    ),
    "Expected ']' at the end of a table declaration": "expected ] to close the [table] header",
    "Expected ']]' at the end of an array declaration": "expected ]] to close the [[table]] header",
    "Unclosed array": "expected , or ] in this list",
    "Unclosed inline table": "expected , or } in this inline table (it must stay on one line)",
    "Invalid hex value": "\\u needs 4 hex digits and \\U 8, like \\u00e9",
    "Escaped character is not a Unicode scalar value": (
        "this \\u escape is not a character (surrogates are not allowed)"
    ),
    "Invalid value": f"expected a value: {_VALUE}",
    "Invalid date or datetime": "not a valid date or time; write them like 2024-01-31",
}


def _clash(text: str, index: int, reason: str) -> tuple[Position, str, str]:
    """The second definition of a key or table: where it is, and what it clashes with."""
    positions = Positions(text)
    statement = positions.statement_at(len(text[: max(index - 1, 0)].encode("utf-8")))
    if statement is None:
        return _position(text, index), "", "defined twice; each key and table is written once"
    position, key, kind = statement
    if reason.startswith("Cannot declare "):  # tomllib names the table; trust it over ours
        key = tuple(ast.literal_eval(reason.removeprefix("Cannot declare ").rsplit(" ", 1)[0]))
    name = dotted(key)
    before = [s for s in positions.statements.values() if s[0] < position]
    for earlier, other, other_kind in before:
        line = earlier[0]
        if other == key and kind == "pair":
            return position, name, f"set twice (first on line {line}); keep one of them"
        if other == key and other_kind == "pair":
            return position, name, f"already set with = on line {line}; define it in one place"
        if other == key:
            return position, name, f"declared twice (first on line {line}); merge the two tables"
    for earlier, other, other_kind in reversed(before):  # the nearest, not an enclosing one
        line = earlier[0]
        if other_kind == "pair" and key[: len(other)] == other:
            return (
                position,
                name,
                f"{dotted(other)} is already set on line {line}; "
                "a value written with = cannot be added to later",
            )
        if other[: len(key)] == key and kind == "pair":
            return position, name, f"{dotted(other)} is already a table (line {line})"
        if other[: len(key)] == key:
            return position, name, f"already defined by {dotted(other)} on line {line}"
    return position, name, "defined twice; each key and table is written once"


def _long_number(text: str) -> TomlProblem:
    positions = Positions(text)
    limit = sys.get_int_max_str_digits()
    for node in _walk(positions.root):
        written = node.text.decode() if node.type == "integer" else ""
        digits = len(re.sub(r"^[+-]?(0[xob])?|_", "", written))
        if digits > limit:
            found = positions.statement_at(node.start_byte)
            key = dotted(found[1]) if found else ""
            message = f"a number of {digits} digits; a number has at most {limit}"
            return TomlProblem(positions.pos(node), key, message)
    return TomlProblem(_position(text, 0), "", f"a number has more than {limit} digits")


def dotted(key: Key) -> str:
    """``("environments", "staging", "bypass", 0)`` → ``environments.staging.bypass[0]``."""
    out = ""
    for part in key:
        if isinstance(part, int):
            out += f"[{part}]"
            continue
        name = part if _BARE.fullmatch(part) else json.dumps(part, ensure_ascii=False)
        out += f".{name}" if out else name
    return out


_BARE = re.compile(r"[A-Za-z0-9_-]+")


@cache
def _parser() -> Any:
    import tree_sitter_toml
    from tree_sitter import Language, Parser

    return Parser(Language(tree_sitter_toml.language()))


class Positions:
    """Walk the tree-sitter syntax tree and note where every key path is written.

    ``statements`` holds every table header and ``key = value`` (also those inside
    inline tables) by node id, in the order written: position, key path and kind.
    """

    def __init__(self, text: str) -> None:
        source = text.encode("utf-8")
        self.lines = source.split(b"\n")
        self.found: dict[Key, Position] = {}
        self.statements: dict[int, tuple[Position, Key, str]] = {}
        self.array_counts: dict[Key, int] = {}
        self.columns: dict[int, list[int] | None] = {}
        self.root = _parser().parse(source).root_node
        for node in self.root.children:
            if node.type in ("table", "table_array_element"):
                header = self.header(node)
                self.found.setdefault(header, self.pos(node))
                written = header[:-1] if node.type == "table_array_element" else header
                self.statements[node.id] = (self.pos(node), written, "table")
                for child in node.children:
                    if child.type == "pair":
                        self.pair(child, header)
            elif node.type == "pair":
                self.pair(node, ())

    def header(self, node: Any) -> Key:
        names = next((_key_names(c) for c in node.children if c.type.endswith("key")), [])
        key: Key = ()
        for name in names:
            key = (*key, name)
            if key in self.array_counts:  # a sub-table of the last element of an array
                key = (*key, self.array_counts[key] - 1)
        if node.type == "table_array_element" and key:
            base = key[:-1] if isinstance(key[-1], int) else key
            self.array_counts[base] = self.array_counts.get(base, 0) + 1
            key = (*base, self.array_counts[base] - 1)
        return key

    def pair(self, node: Any, prefix: Key) -> None:
        key_node, value = node.children[0], node.children[-1]
        key = (*prefix, *_key_names(key_node))
        self.found.setdefault(key, self.pos(key_node))
        self.statements[node.id] = (self.pos(key_node), key, "pair")
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
        if line not in self.columns:  # once per line: a long one may hold many values
            self.columns[line] = _char_columns(self.lines[line])
        columns = self.columns[line]
        return line + 1, (byte if columns is None else columns[byte]) + 1

    def statement_at(self, byte: int) -> tuple[Position, Key, str] | None:
        """The innermost header or ``key = value`` that the byte at ``byte`` is part of."""
        node = self.root.descendant_for_byte_range(byte, byte)
        while node is not None and node.id not in self.statements:
            node = node.parent
        return None if node is None else self.statements[node.id]


def _char_columns(line: bytes) -> list[int] | None:
    """The character index of each byte of ``line`` (and of its end); None for ASCII."""
    if line.isascii():
        return None
    text = line.decode("utf-8", "replace")
    return [*(i for i, c in enumerate(text) for _ in c.encode("utf-8")), len(text)]


def _walk(root: Any) -> Iterator[Any]:
    stack = [root]
    while stack:
        node = stack.pop()
        yield node
        stack.extend(reversed(node.children))


def _key_names(node: Any) -> list[str]:
    names: list[str] = []
    stack = [node]
    while stack:  # a dotted key is a left-leaning tree: a.b.c is ((a . b) . c)
        part = stack.pop()
        if part.type == "dotted_key":
            stack.extend(reversed([c for c in part.children if c.type.endswith("key")]))
        elif part.type == "quoted_key":
            names.append(_unquoted(part.text.decode("utf-8")))
        else:
            names.append(part.text.decode("utf-8"))
    return names


def _unquoted(key: str) -> str:
    try:
        return next(iter(tomllib.loads(f"{key} = 0")))
    except tomllib.TOMLDecodeError:  # tree-sitter read more into it than tomllib would
        return key[1:-1]
