"""``${dotted.path}`` references between values, so nothing in tiers.toml is typed twice.

A string that is exactly one reference takes the referenced value whatever its type
(a list of secrets, a table); a reference inside a longer string is replaced by the
referenced scalar's text. ``$${`` writes a literal ``${`` (for shell commands).
References are resolved before validation, so the model only ever sees plain values.

A chain of references may be as long as the file (it is followed with a stack, not by
recursion), but what references build is bounded: at most ``MAX_COPIED`` values copied
in all, and no deeper than the file itself may nest (``MAX_DEPTH``).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterator
from functools import cached_property
from typing import Any

from tiers.config.source import Key, Source, dotted
from tiers.config.syntax import MAX_DEPTH
from tiers.errors import ConfigError, Problem

_REF = re.compile(r"\$(\$?)\{([^}]*)\}")
_PATH = re.compile(r"[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*")

MAX_COPIED = 100_000
"""Values that references may copy in all (``a = ["${b}", "${b}"]`` copies b twice)."""
_MAX_PROBLEMS = 50  # past this, more of the same only slows the report down

Resolved = tuple[Any, int, int]  # the value, how many values it holds, how deep it nests


class _Unresolvable(Exception):
    def __init__(self, problem: Problem) -> None:
        self.problem = problem


def resolve(source: Source) -> dict[str, Any]:
    """Return a copy of ``source.data`` with every reference replaced by its value.

    A value referenced from several places is one object in all of them.
    """
    resolver = _Resolver(source)
    problems: list[Problem] = []
    for key in resolver.strings:
        if key in resolver.done or key in resolver.failed:
            continue
        try:
            resolver.settle(key)
        except _Unresolvable as exc:
            problems.append(exc.problem)
            if len(problems) == _MAX_PROBLEMS or resolver.copied > MAX_COPIED:
                break
    if problems:
        raise ConfigError(problems)
    return resolver.copy(source.data, ())[0]  # type: ignore[no-any-return]


class _Resolver:
    def __init__(self, source: Source) -> None:
        self.source = source
        self.strings = {k: v for k, v in _leaves(source.data, ()) if "${" in v}
        self.done: dict[Key, Resolved] = {}
        self.failed: set[Key] = set()
        self.copied = 0
        self.needed: dict[Key, list[Key]] = {}

    def settle(self, key: Key) -> None:
        """Resolve the string at ``key`` after every string it needs, innermost first."""
        stack = [key]
        try:
            while stack:
                waiting = [k for k in self.needs(stack[-1]) if k not in self.done]
                if not waiting:
                    self.done[stack[-1]] = self.string(stack[-1])
                    stack.pop()
                elif waiting[0] in self.failed:  # its problem is reported already
                    self.failed.update(stack)
                    return
                elif waiting[0] in stack:
                    chain = (*stack[stack.index(waiting[0]) :], waiting[0])
                    cycle = " → ".join(dotted(k) for k in chain)
                    raise _Unresolvable(self.source.problem(stack[0], f"cyclic reference: {cycle}"))
                else:
                    stack.append(waiting[0])
        except _Unresolvable:
            self.failed.update(stack)
            raise

    def needs(self, key: Key) -> list[Key]:
        """The strings with references that the string at ``key`` takes its value from."""
        if key not in self.needed:
            found: list[Key] = []
            for match in _REF.finditer(self.strings[key]):
                if not match.group(1):
                    found += self.inside.get(self.target(match.group(2), key), [])
            self.needed[key] = found
        return self.needed[key]

    @cached_property
    def inside(self) -> dict[Key, list[Key]]:
        """Each key path → the strings with references at or under it."""
        out: dict[Key, list[Key]] = {}
        for key in self.strings:
            for end in range(1, len(key) + 1):
                out.setdefault(key[:end], []).append(key)
        return out

    def string(self, key: Key) -> Resolved:
        text = self.strings[key]
        whole = _REF.fullmatch(text)
        if whole and not whole.group(1):
            value, size, depth = self.copy(None, self.target(whole.group(2), key))
            self.copied += size - 1
            if self.copied > MAX_COPIED:
                message = (
                    f"${{{whole.group(2)}}} makes references copy more than {MAX_COPIED} "
                    "values in all; reference smaller tables"
                )
                raise _Unresolvable(self.source.problem(key, message))
            if len(key) + depth > MAX_DEPTH:
                message = (
                    f"${{{whole.group(2)}}} nests this value {len(key) + depth} levels deep; "
                    f"tiers.toml allows at most {MAX_DEPTH}"
                )
                raise _Unresolvable(self.source.problem(key, message))
            return value, size, depth
        return _REF.sub(lambda m: self.piece(m, key), text), 1, 0

    def piece(self, match: re.Match[str], key: Key) -> str:
        if match.group(1):  # $${...} is a literal ${...}
            return "${" + match.group(2) + "}"
        value = self.copy(None, self.target(match.group(2), key))[0]
        if isinstance(value, dict | list):
            raise _Unresolvable(
                self.source.problem(
                    key,
                    f"${{{match.group(2)}}} is a table or list and cannot be part of a "
                    "longer string; reference it alone or reference one of its values",
                )
            )
        return str(value).lower() if isinstance(value, bool) else str(value)

    def copy(self, node: Any, key: Key) -> Resolved:
        """The value at ``key`` (``node``, or looked up when None) with references resolved."""
        if key in self.done:
            return self.done[key]
        if node is None:
            node = self.source.data
            for part in key:
                node = node[part]
        if isinstance(node, dict):
            items = {k: self.copy(v, (*key, k)) for k, v in node.items()}
            return {k: v[0] for k, v in items.items()}, *_measure(items.values())
        if isinstance(node, list):
            values = [self.copy(v, (*key, i)) for i, v in enumerate(node)]
            return [v[0] for v in values], *_measure(values)
        return node, 1, 0

    def target(self, path: str, key: Key) -> Key:
        """The key path ``${path}`` names; a malformed or dangling one is a problem."""
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
        return target

    def dangling(self, path: str) -> str:
        message = f"${{{path}}} refers to nothing in this file"
        close = difflib.get_close_matches(path, self.paths, n=1, cutoff=0.75)
        if close:
            return f"{message}; did you mean ${{{close[0]}}}?"
        return f"{message}; write $${{{path}}} for a literal ${{{path}}}"

    @cached_property
    def paths(self) -> list[str]:
        return list(_paths(self.source.data))


def _measure(parts: Any) -> tuple[int, int]:
    """Values held and levels nested by a table or list made of ``parts``."""
    parts = list(parts)
    return 1 + sum(p[1] for p in parts), (1 + max(p[2] for p in parts)) if parts else 0


def _leaves(value: Any, key: Key) -> Iterator[tuple[Key, str]]:
    """Every string in the file with its key path, in the order written."""
    if isinstance(value, dict):
        for name, item in value.items():
            yield from _leaves(item, (*key, name))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _leaves(item, (*key, index))
    elif isinstance(value, str):
        yield key, value


def _paths(data: dict[str, Any], prefix: str = "") -> Iterator[str]:
    for name, value in data.items():
        path = f"{prefix}.{name}" if prefix else name
        yield path
        if isinstance(value, dict):
            yield from _paths(value, path)
