"""The command line: parse, call one function, render. No logic lives here.

Every command module registers itself on ``app``; heavy imports happen inside the
command functions so ``tiers --help`` stays fast. Errors become exit codes in one
place, ``main``: 0 success, 1 a failed operation or findings, 2 unusable input.
"""

from __future__ import annotations

import itertools
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

from tiers.cli import access, check, ci, deploy, diff, docs, init, io, local, ls, port, secrets  # noqa: E402  (registers the commands)

__all__ = [
    "access",
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
    "secrets",
]


def main() -> None:
    """Run the CLI; every error becomes one line on stderr and an exit code, here only.

    A TiersError exits with its own code (1 or 2). Anything else is a fault in tiers:
    one line naming it, exit 1, and the traceback only with ``TIERS_DEBUG=1``.
    """
    from tiers.errors import TiersError

    debug = os.environ.get("TIERS_DEBUG") == "1"
    io.results.written = False
    try:
        app()  # standalone: usage errors exit 2, --help and Ctrl-C are handled
    except TiersError as exc:
        if debug:
            raise
        if _wants_json(sys.argv[1:]) and not io.results.written:  # stdout stays one JSON document
            io.out(_error_json(exc))
        io.error(str(exc))
        sys.exit(exc.exit_code)
    except Exception as exc:
        if debug:
            raise
        io.error(f"tiers failed unexpectedly: {unexpected(exc)}")
        io.error("run it again with TIERS_DEBUG=1 to see the traceback, and report it")
        sys.exit(1)


def _wants_json(argv: list[str]) -> bool:
    """Whether the command asked for JSON, so its error must be JSON on stdout too."""
    args = argv[: argv.index("--")] if "--" in argv else argv
    pairs = itertools.pairwise(args)
    return (
        "--json" in args
        or "--format=json" in args
        or ("--format", "json") in pairs
        or (("-f", "json") in itertools.pairwise(args))
    )


def _error_json(exc: Exception) -> str:
    """``{"error": {"message", "exit_code", "problems"}}``: stable keys for a JSON consumer."""
    import json

    from tiers.errors import ConfigError, TiersError

    error: dict[str, object] = {
        "message": str(exc),
        "exit_code": exc.exit_code if isinstance(exc, TiersError) else 1,
    }
    if isinstance(exc, ConfigError):
        error["problems"] = [
            {"file": p.file, "line": p.line, "column": p.column, "key": p.key, "message": p.message}
            for p in exc.problems
        ]
    return json.dumps({"error": error}, indent=2)


def unexpected(exc: BaseException) -> str:
    """``RecursionError: maximum recursion depth exceeded``, on one line."""
    text = " ".join(str(exc).split())
    if len(text) > 200:
        text = text[:200] + "…"
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
