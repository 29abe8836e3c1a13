"""The test platform installed for real, and a small project that deploys on it.

``plugin/`` holds the ``tiers_memory`` package and its dist-info, so putting that folder
on ``sys.path`` (and on ``PYTHONPATH``, for the command lines run in child processes)
registers its two platforms through the ``tiers.platforms`` entry points, as a pip install
would. Only the tests of this folder see it.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

PLUGIN = Path(__file__).resolve().parent / "plugin"

TIERS_TOML = """\
[project]
name = "shop"

[services.backend]
kind = "api"
root = "backend"
paths = ["backend/**"]
migrations = ["backend/alembic/versions/**"]
release_command = "python -m alembic upgrade head"
downgrade_command = "python -m alembic downgrade $TIERS_MIGRATION_TARGET"
health = "/health"
processes = { app = "python -m http.server $PORT" }
vars = { database_url = "DATABASE_URL" }

[services.frontend]
kind = "frontend"
root = "frontend"
paths = ["frontend/**"]
output = "."
vars = { api_url = "PUBLIC_API_URL" }

[environments.staging]
trigger = { push = "main" }
namespace = "shop.stg"
database = { provider = "local", engine = "sqlite", name = "shop-stg", url = "sqlite:///shop.db" }

[environments.staging.backend]
platform = "memory"
url = "https://api-stg.shop.example"
secrets = []

[environments.staging.frontend]
platform = "memory-cdn"
url = "https://stg.shop.example"
api_url = "${environments.staging.backend.url}"
secrets = []
"""

ALEMBIC_INI = "[alembic]\nscript_location = alembic\n"

ALEMBIC_ENV = """\
import os

from alembic import context
from sqlalchemy import create_engine

with create_engine(os.environ["DATABASE_URL"]).connect() as connection:
    context.configure(connection=connection)
    with context.begin_transaction():
        context.run_migrations()
"""

FIRST_MIGRATION = '''\
"""tracks"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None


def upgrade():
    op.create_table("tracks", sa.Column("id", sa.Integer, primary_key=True))


def downgrade():
    op.drop_table("tracks")
'''


def migration(revision: str, down: str, table: str, *then: str) -> str:
    """A migration that creates ``table``, then runs the lines ``then``."""
    after = "".join(f"    {line}\n" for line in then)
    return (
        f'"""{table}"""\n\nimport sqlalchemy as sa\nfrom alembic import op\n\n'
        f'revision = "{revision}"\ndown_revision = "{down}"\n\n\n'
        f"def upgrade():\n"
        f'    op.create_table("{table}", sa.Column("id", sa.Integer, primary_key=True))\n'
        f"{after}\n\n"
        f'def downgrade():\n    op.drop_table("{table}")\n'
    )


def git(repo: Path, *args: str) -> str:
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "Ada",
        "GIT_AUTHOR_EMAIL": "ada@shop.example",
        "GIT_COMMITTER_NAME": "Ada",
        "GIT_COMMITTER_EMAIL": "ada@shop.example",
    }
    done = subprocess.run(
        ["git", *args], cwd=repo, env=env, capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


def commit(project: Path, message: str, files: dict[str, str]) -> str:
    """Write ``files`` (path → text) in ``project`` and commit them on main; the commit."""
    for name, text in files.items():
        path = project / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    git(project, "add", "--all")
    git(project, "commit", "--quiet", "--message", message)
    return git(project, "rev-parse", "HEAD")


@pytest.fixture(scope="package", autouse=True)
def memory_platforms() -> Iterator[None]:
    """The ``memory`` and ``memory-cdn`` test platforms, installed for this folder's tests."""
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(PLUGIN))
        found = os.environ.get("PYTHONPATH")
        patch.setenv("PYTHONPATH", os.pathsep.join([str(PLUGIN), *([found] if found else [])]))
        yield


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A git repository whose staging runs its backend on ``memory`` and its frontend on
    ``memory-cdn``, with one migration committed on main; the current directory."""
    path = tmp_path / "shop"
    path.mkdir()
    git(path, "init", "--quiet", "--initial-branch", "main")
    commit(
        path,
        "the shop",
        {
            ".gitignore": ".tiers/\n",
            "tiers.toml": TIERS_TOML,
            "backend/alembic.ini": ALEMBIC_INI,
            "backend/alembic/env.py": ALEMBIC_ENV,
            "backend/alembic/versions/0001_tracks.py": FIRST_MIGRATION,
            "backend/health": "ok\n",
            "frontend/index.html": "<h1>shop</h1>\n",
        },
    )
    monkeypatch.chdir(path)
    return path
