"""`tiers check`: the separation linter."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from tiers.cli import app, io

if TYPE_CHECKING:
    from tiers.checks import Severity


class Format(StrEnum):
    text = "text"
    json = "json"
    sarif = "sarif"


class Level(StrEnum):
    info = "info"
    warning = "warning"
    error = "error"
    never = "never"

    @property
    def severity(self) -> Severity:
        return "info" if self is Level.info else "warning" if self is Level.warning else "error"


@app.command()
def check(
    config: io.ConfigOption = Path("tiers.toml"),
    format: Annotated[Format, typer.Option("--format", "-f", help="Output format.")] = Format.text,
    fail_on: Annotated[
        Level, typer.Option("--fail-on", help="Exit 1 when a finding is at or above this severity.")
    ] = Level.error,
    json_: Annotated[bool, typer.Option("--json", help="Same as --format json.")] = False,
    ignore: Annotated[
        list[str] | None, typer.Option("--ignore", help="Skip a rule by id (repeatable).")
    ] = None,
    list_rules: Annotated[
        bool, typer.Option("--list-rules", help="Describe every rule and exit.")
    ] = False,
) -> None:
    """Prove the environments share nothing they must not (exit 1 on findings, 2 on bad input)."""
    from tiers.checks import failing, report, run
    from tiers.config import load

    format = Format.json if json_ else format
    if list_rules:
        _list_rules(format)
        return
    loaded = load(config)
    findings = run(loaded.config, loaded.source, ignore or [])
    if format is Format.json:
        io.out(report.as_json(findings, loaded.config))
    elif format is Format.sarif:
        io.out(report.as_sarif(findings))
    else:
        io.out(report.as_text(findings, loaded.config))
    if fail_on is not Level.never and failing(findings, fail_on.severity):
        raise typer.Exit(1)


def _list_rules(format: Format) -> None:
    import json

    from tiers.checks import report

    table = report.rules_table()
    if format is Format.sarif:
        io.out(report.as_sarif([]))
        return
    if format is Format.json:
        io.out(json.dumps(table, indent=2))
        return
    for item in table:
        io.out(f"{item['id']} ({item['severity']}, {item['group']}): {item['title']}")
        io.out(f"    fix: {item['hint']}")
