"""Which changed files belong to a service: ``**`` spans directories, ``*`` does not."""

from __future__ import annotations

import pytest

from tiers.pipeline.paths import matches


@pytest.mark.parametrize(
    ("path", "glob", "expected"),
    [
        ("backend/src/plyr/api.py", "backend/src/**", True),
        ("backend/src", "backend/src/**", True),  # a submodule or link changes as itself
        ("backend/srcx/a.py", "backend/src/**", False),
        ("frontend/index.html", "frontend/**", True),
        ("frontend/index.html", "backend/**", False),
        ("a/b.py", "a/**/b.py", True),
        ("a/x/y/b.py", "a/**/b.py", True),
        ("a/foob.py", "a/**/b.py", False),
        ("backend/xmigrations/1.py", "backend/**/migrations/*.py", False),
        ("backend/alembic/versions/0004_x.py", "backend/alembic/versions/*.py", True),
        ("backend/alembic/versions/sub/0004_x.py", "backend/alembic/versions/*.py", False),
        ("backend/alembic.ini", "backend/alembic.ini", True),
        ("backend/alembic-ini", "backend/alembic.ini", False),
        ("v1.py", "v?.py", True),
    ],
)
def test_globs(path: str, glob: str, expected: bool) -> None:
    assert matches(path, glob) is expected
