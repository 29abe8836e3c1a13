"""Whether a tier that runs the work tree has applied the work tree's migrations.

Development runs whatever is checked out: a migration file added there is applied only
when ``tiers up`` runs the release command again, and until then the new code meets the
old schema (its health path may well say ok). ``tiers status`` says so, from the revision
files (read, never imported) and the database's ``alembic_version``.

>>> found = pending(config, Path("."), ["development"], platform.database_url)  # doctest: +SKIP
>>> pending_line(found["development"])
'migrations pending: 0004 (run `tiers up development`)'
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tiers.config import Config, Environment
from tiers.errors import TiersError, UsageError
from tiers.git import Repo
from tiers.pipeline.migrations import Migrations
from tiers.providers import databases

__all__ = ["Pending", "pending", "pending_line"]


@dataclass(frozen=True)
class Pending:
    """An environment's database against the work tree's migration files."""

    environment: str
    database: str | None
    """The head in the database (None: no migration applied)."""
    work_tree: str
    """The head of the work tree's revision files (comma-joined when the chain branches)."""
    revisions: tuple[str, ...]
    """What upgrading applies, oldest first; empty when the database's head does not lead
    to the work tree's (a revision of another branch, or one the work tree lacks)."""

    def to_json(self) -> dict[str, Any]:
        return {
            "database": self.database,
            "work_tree": self.work_tree,
            "pending": list(self.revisions),
            "summary": pending_line(self),
        }


def pending(
    config: Config,
    project_dir: Path,
    environments: list[str],
    database_url: Callable[[Environment], str | None],
) -> dict[str, Pending]:
    """Each of ``environments`` that runs the work tree (a local tier, or any tier of a
    project outside git) and whose database is not at the work tree's migration head.

    A database that cannot be read is left out: the environment's health says why.
    """
    globs = [g for s in config.services.values() for g in s.migrations]
    chain = Migrations.read(project_dir, globs)
    heads = chain.heads()
    if not heads:
        return {}
    head = ",".join(heads)
    outside_git = _outside_git(project_dir)
    out = {}
    for name in environments:
        env = config.environments[name]
        url = database_url(env)
        if url is None or not (env.local or outside_git):
            continue
        try:
            applied = databases.migration_head(url)
        except TiersError:
            continue
        if applied != head:
            ahead = chain.between(applied, head) if len(heads) == 1 else []
            out[name] = Pending(name, applied, head, tuple(r.id for r in reversed(ahead)))
    return out


def pending_line(found: Pending) -> str:
    """``migrations pending: 0004 (run `tiers up development`)``, or how the heads differ."""
    if found.revisions:
        return (
            f"migrations pending: {', '.join(found.revisions)} (run `tiers up {found.environment}`)"
        )
    return (
        f"migrations differ: the database is at {found.database or 'none'}, which the work "
        f"tree's migrations (head {found.work_tree}) do not lead to"
    )


def _outside_git(project_dir: Path) -> bool:
    try:
        Repo.find(project_dir)
    except UsageError:
        return True
    return False
