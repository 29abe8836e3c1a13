"""``${dotted.path}`` references between values, so nothing in tiers.toml is typed twice.

A string that is exactly one reference takes the referenced value whatever its type
(a list of secrets, a table); a reference inside a longer string is replaced by the
referenced scalar's text. ``$${`` writes a literal ``${`` (for shell commands).
References are resolved before validation, so the model only ever sees plain values.
"""

from __future__ import annotations

import difflib
import re
from typing import Any

from tiers.config.source import Key, Source, dotted
from tiers.errors import ConfigError, Problem

_REF = re.compile(r"\$(\$?)\{([^}]*)\}")
_PATH = re.compile(r"[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*")


class _Unresolvable(Exception):
    def __init__(self, problem: Problem) -> None:
        self.problem = problem


def resolve(source: Source) -> dict[str, Any]:
    """Return a copy of ``source.data`` with every reference replaced by its value."""
    resolver = _Resolver(source)
    problems: list[Problem] = []
    out = resolver.walk(source.data, (), problems)
    if problems:
        raise ConfigError(problems)
    return out  # type: ignore[no-any-return]


class _Resolver:
    def __init__(self, source: Source) -> None:
        self.source = source
        self.done: dict[Key, Any] = {}

    def walk(self, value: Any, key: Key, problems: list[Problem]) -> Any:
        """Resolve every value, collecting one problem per broken string."""
        if isinstance(value, dict):
            return {k: self.walk(v, (*key, k), problems) for k, v in value.items()}
        if isinstance(value, list):
            return [self.walk(v, (*key, i), problems) for i, v in enumerate(value)]
        try:
            return self.value(value, key, ())
        except _Unresolvable as exc:
            problems.append(exc.problem)
            return value

    def value(self, value: Any, key: Key, stack: tuple[Key, ...]) -> Any:
        if isinstance(value, dict):
            return {k: self.value(v, (*key, k), stack) for k, v in value.items()}
        if isinstance(value, list):
            return [self.value(v, (*key, i), stack) for i, v in enumerate(value)]
        if isinstance(value, str) and "${" in value:
            return self.string(value, key, stack)
        return value

    def string(self, text: str, key: Key, stack: tuple[Key, ...]) -> Any:
        if key in self.done:
            return self.done[key]
        if key in stack:
            cycle = " → ".join(dotted(k) for k in (*stack[stack.index(key) :], key))
            raise _Unresolvable(self.source.problem(stack[0], f"cyclic reference: {cycle}"))
        stack = (*stack, key)
        whole = _REF.fullmatch(text)
        if whole and not whole.group(1):
            result = self.target(whole.group(2), key, stack)
        else:
            result = _REF.sub(lambda m: self.piece(m, key, stack), text)
        self.done[key] = result
        return result

    def piece(self, match: re.Match[str], key: Key, stack: tuple[Key, ...]) -> str:
        if match.group(1):  # $${...} is a literal ${...}
            return "${" + match.group(2) + "}"
        value = self.target(match.group(2), key, stack)
        if isinstance(value, dict | list):
            raise _Unresolvable(
                self.source.problem(
                    key,
                    f"${{{match.group(2)}}} is a table or list and cannot be part of a "
                    "longer string; reference it alone or reference one of its values",
                )
            )
        return str(value).lower() if isinstance(value, bool) else str(value)

    def target(self, path: str, key: Key, stack: tuple[Key, ...]) -> Any:
        if not _PATH.fullmatch(path):
            raise _Unresolvable(
                self.source.problem(
                    key,
                    f"${{{path}}} is not a reference (expected ${{section.key}}); "
                    f"write $${{{path}}} for a literal ${{{path}}}",
                )
            )
        target: Key = tuple(path.split("."))
        node: Any = self.source.data
        for part in target:
            if not isinstance(node, dict) or part not in node:
                raise _Unresolvable(self.source.problem(key, self.dangling(path)))
            node = node[part]
        return self.value(node, target, stack)

    def dangling(self, path: str) -> str:
        message = f"${{{path}}} refers to nothing in this file"
        close = difflib.get_close_matches(path, list(_paths(self.source.data)), n=1, cutoff=0.75)
        if close:
            return f"{message}; did you mean ${{{close[0]}}}?"
        return f"{message}; write $${{{path}}} for a literal ${{{path}}}"


def _paths(data: dict[str, Any], prefix: str = "") -> Any:
    for name, value in data.items():
        path = f"{prefix}.{name}" if prefix else name
        yield path
        if isinstance(value, dict):
            yield from _paths(value, path)
