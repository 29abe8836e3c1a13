"""Opening a state store: the default SQLite file, PostgreSQL URLs, and clear errors."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from tiers.errors import OperationError, UsageError
from tiers.state import StateStore


def test_default_is_sqlite_in_wal_mode_under_dot_tiers(tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    with StateStore.open(None, project) as store:
        run = store.begin("staging", "deploy", "2026.1126.010203", "abc123", "alice")
        store.finish(run, "succeeded")
    database = project / ".tiers" / "state.db"
    with sqlite3.connect(database) as raw:
        assert raw.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    raw.close()
    with StateStore.open(None, project) as again:
        last = again.last("staging")
        assert last is not None
        assert (last.id, last.version, last.state) == (run, "2026.1126.010203", "succeeded")


def test_a_sqlite_url_is_used_as_given(tmp_path: Path) -> None:
    path = tmp_path / "elsewhere.db"
    with StateStore.open(f"sqlite:///{path}", tmp_path) as store:
        store.begin("dev", "deploy", "v1", None, "alice")
    assert path.exists()
    assert not (tmp_path / ".tiers").exists()


@pytest.mark.parametrize("scheme", ["postgresql", "postgres", "postgresql+psycopg"])
def test_postgresql_urls_use_psycopg(postgres_url: str, scheme: str, tmp_path: Path) -> None:
    url = scheme + postgres_url.removeprefix("postgresql")
    with StateStore.open(url, tmp_path) as store:
        assert store.engine.dialect.driver == "psycopg"
        run = store.begin("prod", "deploy", "v1", None, "ci")
        assert [d.id for d in store.history("prod")] == [run]
    assert not (tmp_path / ".tiers").exists()


def test_unreachable_postgresql_names_the_url_without_its_password(tmp_path: Path) -> None:
    with pytest.raises(OperationError) as caught:
        StateStore.open("postgresql://deployer:hunter2@127.0.0.1:1/tiers", tmp_path)
    message = str(caught.value)
    assert message.startswith(
        "cannot use the state database postgresql://deployer:***@127.0.0.1:1/tiers: "
        'connection failed: connection to server at "127.0.0.1", port 1 failed: '
        "Connection refused; check the state URL and that the database server is running"
    )
    assert "hunter2" not in message
    assert "\n" not in message


def test_a_missing_postgresql_database_is_named(postgres_url: str, tmp_path: Path) -> None:
    url = postgres_url + "_missing"
    with pytest.raises(OperationError, match=r'database "tiers_test_\w+_missing" does not exist'):
        StateStore.open(url, tmp_path)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        (
            "not a url",
            "invalid state URL not a url; expected "
            "postgresql://USER:PASSWORD@HOST:5432/DATABASE or sqlite:///PATH/state.db",
        ),
        (
            "postgresql://deployer:hunter2@db:five/tiers",
            "invalid state URL postgresql://deployer:***@db:five/tiers; expected "
            "postgresql://USER:PASSWORD@HOST:5432/DATABASE or sqlite:///PATH/state.db",
        ),
        (
            "mysql://deployer:hunter2@db/tiers",
            "unsupported state URL mysql://deployer:***@db/tiers: tiers keeps state in "
            "PostgreSQL or SQLite; expected "
            "postgresql://USER:PASSWORD@HOST:5432/DATABASE or sqlite:///PATH/state.db",
        ),
    ],
)
def test_malformed_urls_are_usage_errors(url: str, message: str, tmp_path: Path) -> None:
    with pytest.raises(UsageError) as caught:
        StateStore.open(url, tmp_path)
    assert str(caught.value) == message


def test_an_unusable_dot_tiers_is_named(tmp_path: Path) -> None:
    (tmp_path / ".tiers").write_text("not a directory")
    with pytest.raises(OperationError) as caught:
        StateStore.open(None, tmp_path)
    assert str(caught.value) == (
        f"cannot create {tmp_path / '.tiers'} for the state database: File exists; "
        "make the project directory writable or give a state URL"
    )


def test_an_unusable_sqlite_file_is_named(tmp_path: Path) -> None:
    (tmp_path / "state.db").mkdir()
    with pytest.raises(OperationError) as caught:
        StateStore.open(f"sqlite:///{tmp_path / 'state.db'}", tmp_path)
    assert str(caught.value) == (
        f"cannot use the state database sqlite:///{tmp_path / 'state.db'}: "
        "unable to open database file; "
        "check that the file and its directory are writable, on a local disk"
    )
