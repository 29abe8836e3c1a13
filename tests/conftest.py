"""Every test runs in its own directory, with this run's TIERS_HOME and no TIERS_* leaking in."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tiers.config.templates import write

ADMIN_URL = os.environ.get(
    "TIERS_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)


@contextlib.contextmanager
def new_database(prefix: str) -> Iterator[str]:
    """A new, empty database on the machine's PostgreSQL, dropped (forcefully) afterwards."""
    import uuid

    import psycopg

    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    try:
        admin = psycopg.connect(ADMIN_URL, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        pytest.fail(f"PostgreSQL does not answer at {ADMIN_URL}: {exc}")
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# The end-to-end modules (a minute a test, some of them), slowest first: run before the
# rest, so that no worker starts one of them last while the others sit idle.
SLOWEST_FIRST = (
    "tests/pipeline/test_redaction.py",
    "tests/pipeline/test_release.py",
    "tests/pipeline/test_commit.py",
    "tests/gate/test_doctor.py",
    "tests/pipeline/test_third_party.py",
    "tests/pipeline/test_deploy.py",
    "tests/pipeline/test_secrets_delivery.py",
    "tests/platforms/test_local_up.py",
    "tests/examples/test_plyr_app.py",
    "tests/platforms/contract/",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        found = [i for i, prefix in enumerate(SLOWEST_FIRST) if item.nodeid.startswith(prefix)]
        return found[0] if found else len(SLOWEST_FIRST)

    items.sort(key=rank)  # stable: each module's own order is kept


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """The URL of a new, empty PostgreSQL database, dropped after the test."""
    with new_database("tiers_test") as url:
        yield url


@pytest.fixture(scope="session")
def tiers_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """This test run's own TIERS_HOME (the cache of built virtualenvs), never the user's.

    One per run, shared by its xdist workers (their temporary directories have one parent
    per run), so the example's virtualenv is built once a run, not once a test.
    """
    base = tmp_path_factory.getbasetemp()
    run = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    home = run / "tiers-home"
    home.mkdir(exist_ok=True)
    return home


@pytest.fixture(autouse=True)
def isolation(tmp_path: Path, tiers_home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    for name in list(os.environ):
        if name.startswith("TIERS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("TIERS_HOME", str(tiers_home))
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.chdir(tmp_path)
    yield tmp_path


@pytest.fixture
def plyr(tmp_path: Path) -> Path:
    """The seed's setup as tiers.toml, written by `tiers init --example plyr`."""
    return write(tmp_path / "tiers.toml", example="plyr")


Edit = Callable[..., Path]


@pytest.fixture
def edit(plyr: Path) -> Edit:
    """Replace exact text in the plyr example; each ``old`` must be present."""

    def apply(*pairs: tuple[str, str]) -> Path:
        text = plyr.read_text()
        for old, new in pairs:
            assert old in text, f"example no longer contains {old!r}"
            text = text.replace(old, new, 1)
        plyr.write_text(text)
        return plyr

    return apply


def tiers(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the real command line in a child process, as a user would."""
    return subprocess.run(
        [sys.executable, "-m", "tiers", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, **(env or {})},
        check=False,
    )
