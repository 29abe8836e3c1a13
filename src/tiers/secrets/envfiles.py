"""Secrets in and out as text: dotenv files read, and dotenv, JSON, shell or Docker written.

A dotenv file is read by python-dotenv's parser without interpolation (``${HOME}`` stays
as it is written): ``export`` prefixes, comments, and single- or double-quoted values over
several lines are taken. Written dotenv is single-quoted with ``\\`` and ``'`` escaped,
which python-dotenv reads back exactly. Docker's ``--env-file`` takes ``NAME=value``
lines without any quoting, so a value with a line break is refused for it.
"""

from __future__ import annotations

import io
import json
import shlex
from enum import StrEnum
from pathlib import Path

from dotenv.parser import parse_stream

from tiers.errors import UsageError
from tiers.secrets.tier import check_name

__all__ = ["Format", "read_dotenv", "render"]


class Format(StrEnum):
    dotenv = "dotenv"
    json = "json"
    shell = "shell"
    docker = "docker"


def read_dotenv(text: str, shown: str) -> dict[str, str]:
    """``NAME → value`` from a dotenv file's text; errors name ``shown:line``."""
    values: dict[str, str] = {}
    lines: dict[str, int] = {}
    for binding in parse_stream(io.StringIO(text)):
        line = binding.original.line
        if binding.error:
            raise UsageError(f"{shown}:{line}: not a NAME=value line")
        if binding.key is None:
            continue
        try:
            check_name(binding.key)
        except UsageError as exc:
            raise UsageError(f"{shown}:{line}: {exc}") from None
        if binding.value is None:
            raise UsageError(f"{shown}:{line}: {binding.key} has no value (write {binding.key}=…)")
        if binding.key in lines:
            raise UsageError(
                f"{shown}:{line}: {binding.key} is set twice (first on line {lines[binding.key]})"
            )
        values[binding.key] = binding.value
        lines[binding.key] = line
    return values


def read_dotenv_file(path: Path) -> dict[str, str]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        why = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise UsageError(f"cannot read {path}: {why}") from None
    return read_dotenv(text, str(path))


def render(values: dict[str, str], format: Format, environment: str) -> str:
    """The values as ``format`` writes them; what the format cannot hold is refused."""
    if format is Format.json:
        return json.dumps(values, indent=2, ensure_ascii=False)
    if format is Format.shell:
        return "\n".join(f"export {name}={shlex.quote(value)}" for name, value in values.items())
    if format is Format.docker:
        for name, value in values.items():
            if "\n" in value or "\r" in value:
                raise UsageError(
                    f"cannot export {environment} as docker: {name} holds a line break, which "
                    "a Docker --env-file cannot carry; use --format dotenv, json or shell"
                )
        return "\n".join(f"{name}={value}" for name, value in values.items())
    return "\n".join(f"{name}={_single_quoted(value)}" for name, value in values.items())


def _single_quoted(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
