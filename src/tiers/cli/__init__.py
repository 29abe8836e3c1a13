"""The command line: parse, call one function, render. No logic lives here.

Every command module registers itself on ``app``; heavy imports happen inside the
command functions so ``tiers --help`` stays fast. Errors become exit codes in one
place, ``main``: 0 success, 1 a failed operation or findings, 2 unusable input.
"""

from __future__ import annotations

import os
import sys

import typer

app = typer.Typer(
    name="tiers",
    help="Development → staging → production from one tiers.toml: checked, documented, deployed.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
    rich_markup_mode=None,
)

from tiers.cli import check, ci, deploy, diff, docs, init, io, local, ls, port  # noqa: E402  (registers the commands)

__all__ = [
    "app",
    "check",
    "ci",
    "deploy",
    "diff",
    "docs",
    "init",
    "io",
    "local",
    "ls",
    "main",
    "port",
]


def main() -> None:
    """Run the CLI; a TiersError becomes one line on stderr and its exit code."""
    from tiers.errors import TiersError

    try:
        app()  # standalone: usage errors exit 2, --help and Ctrl-C are handled
    except TiersError as exc:
        if os.environ.get("TIERS_DEBUG") == "1":
            raise
        io.error(str(exc))
        sys.exit(exc.exit_code)
