"""Reading tiers.toml: a regular file of at most ``MAX_BYTES`` bytes of UTF-8 TOML.

Values come through ``tomllib`` and positions through tree-sitter (``syntax``), so
error messages and check findings point at the exact spot. What is not a regular file
(a directory, a named pipe, a device such as /dev/zero) is refused before it is opened.
"""

from __future__ import annotations

import codecs
import os
import stat
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from tiers.config.syntax import Key, Position, TomlProblem, dotted, explain_decode_error, loads
from tiers.errors import ConfigError, Problem

__all__ = ["MAX_BYTES", "Key", "Position", "Source", "dotted", "explain_decode_error", "read"]

MAX_BYTES = 1 << 20
"""The largest tiers.toml read (1 MiB); real ones are a few kilobytes."""


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
            if key[:end] in self._first_inside:
                return self._first_inside[key[:end]]
        return (1, 1)

    @cached_property
    def _first_inside(self) -> dict[Key, Position]:
        """Each key path → the first position of a key written inside it."""
        first: dict[Key, Position] = {}
        for key, position in self.positions.items():
            for end in range(1, len(key)):
                if key[:end] not in first or position < first[key[:end]]:
                    first[key[:end]] = position
        return first

    def problem(self, key: Key, message: str) -> Problem:
        line, column = self.locate(key)
        return Problem(self.name, line, column, dotted(key), message)


def read(path: Path) -> Source:
    """Parse ``path``; a missing, unreadable or malformed file raises ConfigError."""
    raw = _read_bytes(path)
    raw = raw.removeprefix(codecs.BOM_UTF8)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line, column = _end_of(_newlines(raw[: exc.start].decode("utf-8")))
        message = (
            f"byte 0x{raw[exc.start]:02x} is not UTF-8 ({exc.reason}); "
            "tiers.toml must be saved as UTF-8 text"
        )
        raise ConfigError([Problem(str(path), line, column, "", message)]) from None
    return parse(_newlines(text), path)


def parse(text: str, path: Path) -> Source:
    try:
        data, positions = loads(text)
    except TomlProblem as exc:
        line, column = exc.position
        raise ConfigError([Problem(str(path), line, column, exc.key, exc.message)]) from None
    return Source(path, text, data, positions)


def _read_bytes(path: Path) -> bytes:
    def refuse(message: str) -> ConfigError:
        return ConfigError([Problem(str(path), 1, 1, "", message)])

    raw = b""
    try:
        info = path.stat()
        if stat.S_ISREG(info.st_mode) and info.st_size <= MAX_BYTES:
            # Non-blocking, so that a named pipe put there since stat() cannot hang us.
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
            with os.fdopen(fd, "rb") as file:
                info = os.fstat(fd)
                if stat.S_ISREG(info.st_mode):
                    raw = file.read(MAX_BYTES + 1)
    except FileNotFoundError:
        raise refuse("no such file; run `tiers init` to write one, or pass --config PATH") from None
    except OSError as exc:
        raise refuse(f"cannot read: {exc.strerror or exc}") from None
    if stat.S_ISDIR(info.st_mode):
        raise refuse("is a directory, not a file")
    if not stat.S_ISREG(info.st_mode):
        raise refuse(f"is {_kind(info.st_mode)}, not a regular file; pass the path of a tiers.toml")
    if info.st_size > MAX_BYTES or len(raw) > MAX_BYTES:
        size = max(info.st_size, len(raw)) / (1 << 20)
        raise refuse(f"is {size:.1f} MiB; a tiers.toml may be at most {MAX_BYTES >> 20} MiB")
    return raw


def _kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a named pipe (FIFO)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a file"


def _newlines(text: str) -> str:
    """\\r\\n line endings as \\n (a lone \\r is not a line ending in TOML)."""
    return text.replace("\r\n", "\n")


def _end_of(text: str) -> Position:
    """Line and column just after ``text``."""
    return text.count("\n") + 1, len(text) - text.rfind("\n")
