"""A release is exactly its commit: the tiers.toml it ships is the commit's own.

What a deploy or rollback runs is decided by the commit it ships, never by the work
tree: the commit's tiers.toml gives the services, their build, commands and bindings,
and its hash is recorded. Uncommitted changes that a user might think are deployed are
named ("not deployed: ..."), and a commit whose tiers.toml fails ``tiers check`` is
refused unless forced.

>>> shipped = config_at(repo, Path("tiers.toml"), "4be1c0d", "2026.1201.101500")  # doctest: +SKIP
>>> refuse_errors(shipped, "2026.1201.101500", forced=None)                        # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tiers.config import Config, Loaded, load_text
from tiers.errors import OperationError, UsageError
from tiers.git import Repo
from tiers.pipeline.paths import touched

__all__ = ["Shipped", "config_at", "refuse_errors", "unshipped"]


@dataclass(frozen=True)
class Shipped:
    """The configuration a commit carries: the model, its source and its exact text."""

    commit: str
    loaded: Loaded
    text: str

    @property
    def config(self) -> Config:
        return self.loaded.config


def config_at(repo: Repo, config_path: Path, commit: str, version: str) -> Shipped:
    """The tiers.toml of ``commit``; errors in it name ``VERSION:tiers.toml:LINE:COL``."""
    text = repo.show(commit, config_path)
    inside = config_path.absolute().relative_to(repo.root).as_posix()
    if text is None:
        raise UsageError(
            f"{version} ({commit[:12]}) has no {inside}: a release ships the tiers.toml "
            "committed with it; commit it, then deploy"
        )
    return Shipped(commit, load_text(text, f"{version}:{inside}"), text)


def unshipped(repo: Repo, config: Config, config_path: Path, commit: str) -> list[str]:
    """What a user may think is deployed and is not: uncommitted changes to tiers.toml or
    to a service's paths, when the deploy ships the commit checked out."""
    if repo.resolve("HEAD") != commit:
        return []
    dirty = repo.dirty()  # tiers' own .tiers/ never counts
    if not dirty:
        return []
    inside = config_path.absolute().relative_to(repo.root).as_posix()
    notes = []
    if inside in dirty:
        notes.append(f"not deployed: uncommitted changes to {inside}")
    services = [] if inside in dirty else touched(config, config_path, dirty)
    if services:
        notes.append(
            f"not deployed: uncommitted changes to {', '.join(services)} "
            f"({_some(dirty)}); commit them to ship them"
        )
    return notes


def refuse_errors(shipped: Shipped, version: str, forced: str | None) -> None:
    """Refuse a commit whose tiers.toml fails ``tiers check`` (``forced`` lifts it)."""
    from tiers.checks import run

    errors = [f for f in run(shipped.config, shipped.loaded.source) if f.severity == "error"]
    if not errors or forced is not None:
        return
    shown = "\n".join(f"  {f.file}:{f.line}:{f.column} [{f.rule}] {f.message}" for f in errors)
    count = f"{len(errors)} error{'s' if len(errors) != 1 else ''}"
    raise OperationError(
        f"not deploying {version}: `tiers check` finds {count} in the "
        f"tiers.toml it ships:\n{shown}\nfix them and commit, or pass --force --reason TEXT"
    )


def _some(paths: list[str]) -> str:
    shown = ", ".join(paths[:3])
    return shown + (f" and {len(paths) - 3} more" if len(paths) > 3 else "")
