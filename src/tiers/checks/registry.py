"""The table of check rules, and running them.

A rule is a small function registered with an id, a severity, a title and a fix hint.
The same table drives ``tiers check``, ``tiers check --list-rules`` and the docs::

    @rule("shared-database", "error", "Two environments share a database",
          "give each environment its own database")
    def shared_database(ctx: Context) -> Iterator[Finding]:
        ...
        yield ctx.finding(("environments", "staging", "database"), "staging and ...")
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Literal

from tiers.config import Config, Source
from tiers.config.source import Key, dotted
from tiers.errors import ConfigError, UsageError

Severity = Literal["error", "warning", "info"]
SEVERITIES: tuple[Severity, ...] = ("info", "warning", "error")


@dataclass(frozen=True)
class Finding:
    rule: str
    severity: Severity
    message: str
    hint: str
    key: str
    file: str
    line: int
    column: int
    environments: tuple[str, ...] = ()


@dataclass(frozen=True)
class Context:
    """What a rule sees: the model, and where each key was written."""

    config: Config
    source: Source
    rule: Rule

    def finding(self, key: Key, message: str, environments: Iterable[str] = ()) -> Finding:
        line, column = self.source.locate(key)
        return Finding(
            rule=self.rule.id,
            severity=self.rule.severity,
            message=message,
            hint=self.rule.hint,
            key=dotted(key),
            file=self.source.name,
            line=line,
            column=column,
            environments=tuple(environments),
        )


Check = Callable[[Context], Iterator[Finding]]


@dataclass(frozen=True)
class Rule:
    id: str
    severity: Severity
    title: str
    hint: str
    check: Check = field(repr=False)
    group: str = ""


RULES: dict[str, Rule] = {}


def rule(id: str, severity: Severity, title: str, hint: str) -> Callable[[Check], Check]:
    """Register a check function under ``id``; ids are unique."""

    def register(check: Check) -> Check:
        if id in RULES:
            raise RuntimeError(f"check rule {id!r} is registered twice")
        group = check.__module__.rsplit(".", 1)[-1]
        RULES[id] = Rule(id, severity, title, hint, check, group)
        return check

    return register


def run(config: Config, source: Source, ignore: Iterable[str] = ()) -> list[Finding]:
    """Every finding of every rule not ignored (here or in tiers.toml), in file order."""
    for index, name in enumerate(config.checks.ignore):
        if name not in RULES:
            problem = source.problem(("checks", "ignore", index), _no_rule(name))
            raise ConfigError([problem])
    for name in ignore:
        if name not in RULES:
            raise UsageError(f"--ignore {name}: {_no_rule(name)}")
    ignored = set(ignore) | set(config.checks.ignore)
    findings = [
        finding
        for item in RULES.values()
        if item.id not in ignored
        for finding in item.check(Context(config, source, item))
    ]
    return sorted(findings, key=lambda f: (f.line, f.column, f.rule))


def failing(findings: Iterable[Finding], level: Severity) -> bool:
    """Whether any finding is at or above ``level``."""
    threshold = SEVERITIES.index(level)
    return any(SEVERITIES.index(f.severity) >= threshold for f in findings)


def _no_rule(name: str) -> str:
    close = difflib.get_close_matches(name, list(RULES), n=1)
    hint = f"did you mean {close[0]!r}?" if close else "see tiers check --list-rules"
    return f"no rule {name!r}; {hint}"
