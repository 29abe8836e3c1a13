"""A third-party app, not the example, through development, staging and production.

tests/pipeline/fixtures/notes is a FastAPI app on SQLModel (which tiers' own Python does
not have) with its own pyproject.toml and requirements.lock, alembic migrations on SQLite
and a health path that answers plain `true`. Each test makes a git repository of a copy,
with a bare one beside it as its remote and the tiers.toml below on free ports; every
tier, development included, runs on the virtualenv the lock file keys (built once a test
run: the tests share this run's TIERS_HOME). The app signs session tokens with SECRET_KEY:
the last test gives staging and production that secret, first one value for both (as a
user exporting it by hand did), then a value each.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import tiers
from tests.pipeline.example import _own_keys, _working_in, git, reserved_ports

FIXTURE = Path(__file__).parent / "fixtures" / "notes"
ENVIRONMENTS = ("development", "staging", "production")
CONFIG = """\
[project]
name = "notes"

[services.api]
paths = ["notes_app/**", "alembic/**", "alembic.ini", "pyproject.toml", "requirements.lock"]
migrations = ["alembic/versions/**"]
build = "python -m pip install --requirement requirements.lock"
lock = "requirements.lock"
release_command = "python -m alembic upgrade head"
health = "/health"
processes = {{ app = "python -m uvicorn notes_app.main:app --host 127.0.0.1 --port $PORT" }}
vars = {{ database_url = "DATABASE_URL" }}

[environments.development]
trigger = "local"
namespace = "dev.notes"
database = {{ provider = "local", engine = "sqlite", name = "dev", url = "sqlite:///dev.sqlite3" }}
api = {{ platform = "local", url = "http://localhost:{development}" }}

[environments.staging]
trigger = {{ push = "main" }}
namespace = "stg.notes"
database = {{ provider = "local", engine = "sqlite", name = "stg", url = "sqlite:///stg.sqlite3" }}
api = {{ platform = "local", url = "http://localhost:{staging}", secrets = [] }}

[environments.production]
trigger = {{ release = "tag" }}
namespace = "notes"
database = {{ provider = "local", engine = "sqlite", name = "prd", url = "sqlite:///prd.sqlite3" }}
api = {{ platform = "local", url = "http://localhost:{production}", secrets = [] }}
"""


@dataclass
class Notes:
    path: Path
    ports: dict[str, int]

    def url(self, environment: str, path: str = "") -> str:
        return f"http://localhost:{self.ports[environment]}{path}"

    def get(self, environment: str, path: str) -> Any:
        with urllib.request.urlopen(self.url(environment, path), timeout=5) as answer:
            return json.loads(answer.read())

    def post(self, environment: str, path: str, body: dict[str, Any]) -> Any:
        request = urllib.request.Request(
            self.url(environment, path),
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=5) as answer:
            return json.loads(answer.read())

    def edit(self, name: str, old: str, new: str) -> None:
        path = self.path / name
        text = path.read_text()
        assert old in text, f"{name} no longer contains {old!r}"
        path.write_text(text.replace(old, new, 1))


@pytest.fixture
def notes() -> Iterator[Notes]:
    top = Path(tempfile.mkdtemp(prefix="tiers-notes-"))
    project = top / "notes"
    shutil.copytree(FIXTURE, project, ignore=shutil.ignore_patterns("__pycache__"))
    with reserved_ports(len(ENVIRONMENTS)) as free:
        ports = dict(zip(ENVIRONMENTS, free, strict=True))
        (project / "tiers.toml").write_text(CONFIG.format(**ports))
        git(project, "init", "-q", "-b", "main")
        git(project, "add", "-A")
        git(project, "commit", "-q", "-m", "notes")
        remote = top / "remote.git"
        subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(remote)], check=True)
        git(project, "remote", "add", "origin", str(remote))
        git(project, "push", "-q", "-u", "origin", "main")
        try:
            yield Notes(project, ports)
        finally:
            tiers("down", cwd=project)
            for pid in _working_in(top):  # a failed test must not leave a process behind
                os.kill(pid, signal.SIGKILL)
            shutil.rmtree(top, ignore_errors=True)


def up(notes: Notes, *environments: str) -> subprocess.CompletedProcess[str]:
    done = tiers("up", *environments, cwd=notes.path)
    assert done.returncode == 0, done.stderr
    return done


def wait_for(probe: Callable[[], Any], timeout: float = 90) -> Any:
    """The first true value ``probe()`` returns (a server not answering yet is retried)."""
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(OSError):
            if value := probe():
                return value
        assert time.monotonic() < deadline, "gave up waiting"
        time.sleep(0.2)


def venvs() -> Path:
    return Path(os.environ["TIERS_HOME"]) / "venvs"


def test_an_app_with_its_own_virtualenv_deploys_through_every_tier(notes: Notes) -> None:
    first = git(notes.path, "rev-parse", "HEAD")
    started = up(notes)
    assert f"development: up, from the work tree  {notes.url('development')}" in started.stdout
    assert f"staging: up, deployed {first[:7]} (main)" in started.stdout
    for environment in ("development", "staging"):
        assert notes.get(environment, "/health") is True
    dev = notes.get("development", "/")
    assert (dev["environment"], dev["commit"]) == ("development", "work-tree")
    assert dev["sqlmodel"] == "0.0.47"  # the app's own dependencies, not tiers' Python
    assert Path(dev["prefix"]).parent == venvs()

    notes.edit(
        "notes_app/main.py",
        '"app": "notes",',
        '"app": "notes",\n        "release": os.environ["TIERS_VERSION"],',
    )
    git(notes.path, "commit", "-q", "-am", "notes: say which release runs")
    git(notes.path, "push", "-q", "origin", "main")
    head = git(notes.path, "rev-parse", "HEAD")
    staged = tiers("deploy", "staging", cwd=notes.path)
    assert staged.returncode == 0, staged.stderr
    released = tiers("release", cwd=notes.path)
    assert released.returncode == 0, released.stderr
    tag = git(notes.path, "tag")
    assert f"production: {tag} serves" in released.stdout

    staging, production = notes.get("staging", "/"), notes.get("production", "/")
    assert (staging["environment"], staging["commit"]) == ("staging", head)
    assert (production["environment"], production["commit"], production["release"]) == (
        "production",
        head,
        tag,
    )
    assert production["prefix"] == staging["prefix"] == dev["prefix"]  # one build of the lock
    assert notes.get("production", "/health") is True
    assert notes.post("staging", "/notes", {"text": "staging only"})["id"] == 1
    assert notes.get("production", "/notes") == []  # migrated, and a database of its own

    status = tiers("status", cwd=notes.path)
    assert status.returncode == 0, status.stdout + status.stderr
    for environment in ENVIRONMENTS:
        assert f"{environment}: serving" in status.stdout
        assert f"  api {notes.url(environment)}: HTTP 200\n" in status.stdout
    assert "migrations" not in status.stdout


def add_column(notes: Notes, revision: str, down: str, column: str) -> None:
    """A new migration adding a boolean column to notes, and the model field for it."""
    (notes.path / f"alembic/versions/{revision}_add_{column}.py").write_text(
        f'"""Notes can be {column}."""\n\n'
        "import sqlalchemy as sa\nfrom alembic import op\n\n"
        f'revision = "{revision}"\ndown_revision = "{down}"\n\n\n'
        "def upgrade() -> None:\n"
        f'    op.add_column("note", sa.Column("{column}", sa.Boolean, nullable=False, '
        "server_default=sa.false()))\n\n\n"
        "def downgrade() -> None:\n"
        f'    op.drop_column("note", "{column}")\n'
    )
    notes.edit(
        "notes_app/main.py", "    text: str\n", f"    text: str\n    {column}: bool = False\n"
    )


def test_a_new_migration_is_named_by_status_until_up_or_dev_applies_it(notes: Notes) -> None:
    up(notes, "development")
    assert notes.post("development", "/notes", {"text": "before"})["id"] == 1
    add_column(notes, "0002", "0001", "done")

    behind = tiers("status", cwd=notes.path)
    assert "development: serving\n  migrations pending: 0002 (run `tiers up development`)\n" in (
        behind.stdout
    )
    report = json.loads(tiers("status", "--json", cwd=notes.path).stdout)
    assert report[0]["migrations"] == {
        "database": "0001",
        "work_tree": "0002",
        "pending": ["0002"],
        "summary": "migrations pending: 0002 (run `tiers up development`)",
    }

    up(notes, "development")
    assert "migrations" not in tiers("status", cwd=notes.path).stdout
    assert notes.get("development", "/notes") == [{"id": 1, "text": "before", "done": False}]
    database = notes.path / ".tiers/local/environments/development/databases/dev.sqlite3"
    with sqlite3.connect(database) as db:
        assert db.execute("SELECT version_num FROM alembic_version").fetchall() == [("0002",)]

    # a branch without that migration checked out: status says up cannot fix it
    added = notes.path / "alembic/versions/0002_add_done.py"
    kept = added.read_text()
    added.unlink()
    assert (
        "  migrations differ: the database is at 0002, which the work tree's migrations "
        "(head 0001) do not lead to\n"
    ) in tiers("status", cwd=notes.path).stdout
    added.write_text(kept)

    # `tiers dev` migrates too before it runs the work tree
    add_column(notes, "0003", "0002", "pinned")
    dev = subprocess.Popen(
        [sys.executable, "-m", "tiers", "dev"],
        cwd=notes.path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # a group of its own, as a terminal gives a command
    )
    try:
        migrated = wait_for(
            lambda: (
                dev.poll() is None
                and [n for n in notes.get("development", "/notes") if "pinned" in n]
            )
        )
    finally:
        os.killpg(dev.pid, signal.SIGINT)  # Ctrl-C
        _, err = dev.communicate(timeout=60)
    assert dev.returncode == 0, err
    assert migrated == [{"id": 1, "text": "before", "done": False, "pinned": False}]


def test_a_dependency_added_to_the_lock_is_installed_by_the_next_up(notes: Notes) -> None:
    up(notes, "development")
    before = notes.get("development", "/")["prefix"]
    with (notes.path / "requirements.lock").open("a") as lock:
        lock.write("humanize==4.16.0\n")
    notes.edit("notes_app/main.py", "import sqlmodel\n", "import humanize\nimport sqlmodel\n")
    notes.edit(
        "notes_app/main.py",
        '"app": "notes",',
        '"app": "notes",\n        "humanize": humanize.__version__,',
    )

    up(notes, "development")
    after = notes.get("development", "/")
    assert after["humanize"] == "4.16.0"
    assert after["prefix"] != before and Path(after["prefix"]).parent == venvs()


def secrets_cli(notes: Notes, *args: str, input: str = "") -> subprocess.CompletedProcess[str]:
    """``tiers secrets ARGS`` as a user types it, ``input`` on its standard input."""
    return subprocess.run(
        [sys.executable, "-m", "tiers", "secrets", *args],
        input=input,
        capture_output=True,
        text=True,
        cwd=notes.path,
        check=False,
    )


def signed_by(notes: Notes, environment: str, user: str) -> str:
    return str(notes.post(environment, f"/token?user={user}", {})["token"])


def accepts(notes: Notes, environment: str, token: str) -> bool:
    """Whether ``environment`` takes ``token`` as a session (200) or refuses it (401)."""
    request = urllib.request.Request(
        notes.url(environment, "/me"), headers={"Authorization": f"Bearer {token}"}
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as answer:
            return bool(answer.status == 200)
    except urllib.error.HTTPError as refused:
        assert refused.code == 401, refused.read()
        return False


def test_a_token_signed_by_staging_is_refused_by_production_once_each_has_its_own_key(
    notes: Notes,
) -> None:
    """The issue's scenario: SECRET_KEY set by hand to one value in both tiers lets a
    staging token into production; check says so, and `generate --all` ends it."""
    with _own_keys(notes.path.parent):
        notes.edit("tiers.toml", "secrets = [] }", 'secrets = ["SECRET_KEY"] }')
        notes.edit("tiers.toml", "secrets = [] }", 'secrets = ["SECRET_KEY"] }')
        for environment in ("staging", "production"):
            assert secrets_cli(notes, "init", environment).returncode == 0
            done = secrets_cli(notes, "set", environment, "SECRET_KEY", input="one-for-both")
            assert done.returncode == 0, done.stderr
        git(notes.path, "add", "-A")
        git(notes.path, "commit", "-q", "-m", "notes signs sessions with SECRET_KEY")
        git(notes.path, "push", "-q", "origin", "main")

        shared = tiers("check", cwd=notes.path)
        assert shared.returncode == 1
        assert (
            "error [secret-reused] staging's SECRET_KEY and production's SECRET_KEY hold the "
            "same value"
        ) in shared.stdout

        up(notes, "staging")
        released = tiers("release", cwd=notes.path)
        assert released.returncode == 0, released.stderr
        before = signed_by(notes, "staging", "mallory")
        assert accepts(notes, "production", before)  # what the check is there to stop

        generated = secrets_cli(notes, "generate", "--all", "SECRET_KEY")
        assert generated.returncode == 0, generated.stderr
        checked = tiers("check", cwd=notes.path)
        assert checked.returncode == 0, checked.stdout + checked.stderr
        assert "secret-reused" not in checked.stdout
        for environment in ("staging", "production"):
            applied = secrets_cli(notes, "apply", environment)
            assert applied.returncode == 0, applied.stderr
            assert "serves with the secrets as they are now" in applied.stdout

        staging, production = (
            signed_by(notes, "staging", "ana"),
            signed_by(notes, "production", "ana"),
        )
        assert staging != production
        assert accepts(notes, "staging", staging) and accepts(notes, "production", production)
        assert not accepts(notes, "production", staging)
        assert not accepts(notes, "staging", production)
        assert not accepts(notes, "production", before)  # the old shared key is gone too
        assert "one-for-both" not in generated.stdout + checked.stdout
