"""Findings as text for people, JSON for scripts and SARIF 2.1.0 for code scanning."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from typing import Any

from tiers import __version__
from tiers.checks.registry import RULES, Finding, Rule
from tiers.checks.sites import cookie_scope
from tiers.config import Config

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
_SARIF_LEVEL = {"error": "error", "warning": "warning", "info": "note"}


def summary(findings: list[Finding]) -> str:
    if not findings:
        return "no findings"
    counts = Counter(f.severity for f in findings)
    parts = [
        f"{counts[s]} {s}{'s' if counts[s] != 1 else ''}"
        for s in ("error", "warning", "info")
        if counts[s]
    ]
    total = len(findings)
    return f"{total} finding{'s' if total != 1 else ''} ({', '.join(parts)})"


def scopes(config: Config) -> dict[str, str | None]:
    """The cookie scope each environment ends up with (None: its hosts are on several sites)."""
    return {name: cookie_scope(env) for name, env in config.environments.items() if env.hosts}


def as_text(findings: list[Finding], config: Config) -> str:
    lines = []
    for f in findings:
        lines.append(f"{f.file}:{f.line}:{f.column} {f.severity} [{f.rule}] {f.message}")
        lines.append(f"    fix: {f.hint}")
    found = scopes(config)
    if found:
        shown = (
            f"{name} {scope or 'none (hosts on several sites)'}" for name, scope in found.items()
        )
        lines.append("cookie scopes: " + ", ".join(shown))
    count = len(config.environments)
    lines.append(f"{summary(findings)} in {count} environment{'s' if count != 1 else ''}")
    return "\n".join(lines)


def as_json(findings: list[Finding], config: Config) -> str:
    return json.dumps(
        {
            "findings": [_finding_dict(f) for f in findings],
            "cookie_scopes": scopes(config),
            "summary": {
                s: sum(f.severity == s for f in findings) for s in ("error", "warning", "info")
            },
        },
        indent=2,
    )


def _finding_dict(f: Finding) -> dict[str, Any]:
    return {
        "rule": f.rule,
        "severity": f.severity,
        "message": f.message,
        "hint": f.hint,
        "key": f.key,
        "environments": list(f.environments),
        "location": {"file": f.file, "line": f.line, "column": f.column},
    }


def as_sarif(findings: list[Finding], rules: Iterable[Rule] | None = None) -> str:
    table = list(rules if rules is not None else RULES.values())
    index = {r.id: i for i, r in enumerate(table)}
    run = {
        "tool": {
            "driver": {
                "name": "tiers",
                "version": __version__,
                "informationUri": "https://pypi.org/project/tiers/",
                "rules": [
                    {
                        "id": r.id,
                        "name": r.id.replace("-", " ").title().replace(" ", ""),
                        "shortDescription": {"text": r.title},
                        "help": {"text": r.hint},
                        "defaultConfiguration": {"level": _SARIF_LEVEL[r.severity]},
                    }
                    for r in table
                ],
            }
        },
        "results": [
            {
                "ruleId": f.rule,
                "ruleIndex": index[f.rule],
                "level": _SARIF_LEVEL[f.severity],
                "message": {"text": f"{f.message}. Fix: {f.hint}"},
                "locations": [
                    {
                        "physicalLocation": {
                            "artifactLocation": {"uri": f.file},
                            "region": {"startLine": f.line, "startColumn": f.column},
                        }
                    }
                ],
            }
            for f in findings
        ],
    }
    return json.dumps({"$schema": SARIF_SCHEMA, "version": "2.1.0", "runs": [run]}, indent=2)


def rules_table() -> list[dict[str, str]]:
    return [
        {"id": r.id, "severity": r.severity, "group": r.group, "title": r.title, "hint": r.hint}
        for r in RULES.values()
    ]
