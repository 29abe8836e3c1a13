"""The app's migration files, read (never imported) for what moving between heads means.

Each alembic revision file names its ``revision`` and ``down_revision``; tiers also reads
two optional declarations from it:

- ``DROPS_COLUMNS = ["table.column", ...]`` and ``DROPS_TABLES = ["table", ...]``: what
  its ``downgrade()`` destroys, so ``tiers rollback --db downgrade`` can refuse to lose
  data it can see;
- ``COMPATIBLE = True``: the previous version of the code runs on the upgraded schema, so
  a failed health check need not restore the database.

>>> chain = Migrations.read(release_dir, ["backend/alembic/versions/**"])  # doctest: +SKIP
>>> [r.id for r in chain.between("0001", "0003")]
['0003', '0002']
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Migrations", "Revision"]


@dataclass(frozen=True)
class Revision:
    id: str
    down: str | None
    path: str
    drops_columns: tuple[str, ...] = ()
    drops_tables: tuple[str, ...] = ()
    compatible: bool = False
    parents: tuple[str, ...] = ()
    """Every ``down_revision`` (a merge revision has several; ``down`` is None then)."""


@dataclass
class Migrations:
    revisions: dict[str, Revision] = field(default_factory=dict)

    @classmethod
    def read(cls, root: Path, globs: list[str]) -> Migrations:
        found = cls()
        for glob in globs:
            # a trailing ** matches directories only: look at the files below them
            pattern = f"{glob}/*" if glob.endswith("**") else glob
            for path in sorted(root.glob(pattern)):
                if path.suffix == ".py" and (revision := _revision(path, root)) is not None:
                    found.revisions[revision.id] = revision
        return found

    def between(self, older: str | None, newer: str | None) -> list[Revision]:
        """Revisions applied to go from ``older`` to ``newer``, newest first.

        Empty when the chain from ``newer`` does not reach ``older`` through known files.
        """
        out: list[Revision] = []
        current = newer
        while current and current != older:
            revision = self.revisions.get(current)
            if revision is None:
                return []
            out.append(revision)
            current = revision.down
        return out if current == older else []

    def heads(self) -> list[str]:
        """The revisions no other revision follows, sorted: one unless the chain branches."""
        followed = {parent for r in self.revisions.values() for parent in r.parents}
        return sorted(r for r in self.revisions if r not in followed)


def _revision(path: Path, root: Path) -> Revision | None:
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"))
    except (OSError, SyntaxError, UnicodeDecodeError):
        return None
    values: dict[str, object] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign | ast.AnnAssign) and node.value is not None:
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                if isinstance(target, ast.Name):
                    try:
                        values[target.id] = ast.literal_eval(node.value)
                    except ValueError:
                        continue
    revision = values.get("revision")
    if not isinstance(revision, str):
        return None
    down = values.get("down_revision")
    parents = (down,) if isinstance(down, str) else tuple(str(d) for d in _list(down))
    return Revision(
        id=revision,
        down=down if isinstance(down, str) else None,
        path=str(path.relative_to(root)),
        drops_columns=tuple(str(c) for c in _list(values.get("DROPS_COLUMNS"))),
        drops_tables=tuple(str(t) for t in _list(values.get("DROPS_TABLES"))),
        compatible=values.get("COMPATIBLE") is True,
        parents=parents,
    )


def _list(value: object) -> list[object]:
    return list(value) if isinstance(value, list | tuple) else []
