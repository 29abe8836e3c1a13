"""`tiers ci`: CI workflows that deploy each environment on its trigger, from tiers.toml."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from tiers.cli import app, io

ci_app = typer.Typer(
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
    rich_markup_mode=None,
)
app.add_typer(
    ci_app,
    name="ci",
    help="Write CI workflows that deploy each environment on its trigger (push, release).",
)


@ci_app.command("github")
def github(
    config: io.ConfigOption = Path("tiers.toml"),
    output_dir: Annotated[
        Path | None,
        typer.Option(
            "--output-dir",
            metavar="DIR",
            help="Write .github/workflows/ under DIR (default: the root of the git "
            "repository tiers.toml is in, else the directory of tiers.toml).",
        ),
    ] = None,
    check: Annotated[
        bool,
        typer.Option(
            "--check", help="Write nothing; exit 1 naming each workflow that is not up to date."
        ),
    ] = False,
    install: Annotated[
        str,
        typer.Option("--install", metavar="COMMAND", help="How the workflows install tiers."),
    ] = "pip install tiers",
) -> None:
    """Write .github/workflows/deploy-ENV.yml for each environment a push or a release deploys."""
    from tiers.ci.github import DIRECTORY, stale, workflows
    from tiers.config import load
    from tiers.errors import OperationError
    from tiers.files import atomic_write

    loaded = load(config)
    root, config_dir = _repository(config)
    files = workflows(loaded.config, config_dir, install)
    out = output_dir if output_dir is not None else root
    problems = {p.path: p for p in stale(out, files)}
    if check:
        for problem in problems.values():
            typer.echo("".join(problem.diff), nl=False)
        if problems:
            raise OperationError(
                "\n".join(f"{_shown(out, p.path)} {p.problem}" for p in problems.values())
                + "\nregenerate the workflows with `tiers ci github`"
            )
        io.out(f"{len(files)} workflows are up to date in {_shown(out, DIRECTORY)}")
        return
    for name, text in files.items():
        if name in problems:
            atomic_write(out / name, text)
            io.out(f"wrote {_shown(out, name)}")
        else:
            io.out(f"{_shown(out, name)} is up to date")
    for name, problem in problems.items():
        if name not in files:  # generated earlier, for an environment that no longer has one
            io.out(f"{_shown(out, name)} {problem.problem}")


def _repository(config: Path) -> tuple[Path, str]:
    """The repository root the workflows belong to (the directory of tiers.toml outside
    git) and the directory of tiers.toml relative to it, like ``.`` or ``deploy``."""
    import os

    from tiers.errors import UsageError
    from tiers.git import Repo

    folder = config.absolute().parent.resolve()
    try:
        root = Repo.find(folder).root.resolve()
    except UsageError:
        root = folder
    return root, Path(os.path.relpath(folder, root)).as_posix()


def _shown(root: Path, name: str) -> Path:
    """``root/name`` as short as it is clear: relative to the working directory if inside."""
    path = root / name
    try:
        return path.absolute().relative_to(Path.cwd())
    except ValueError:
        return path
