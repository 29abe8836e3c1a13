"""Snapshots and restores on real databases: SQLite files in the test's directory (in the
default rollback-journal mode and in WAL mode) and a PostgreSQL database of the test's own
on the server at 127.0.0.1:5432 (or at TIERS_TEST_POSTGRES_URL), dropped afterwards.
"""

from __future__ import annotations

import sqlite3
from contextlib import closing
from dataclasses import replace
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tiers.errors import PlatformError, UsageError
from tiers.providers import databases
from tiers.providers.databases import (
    Snapshot,
    fingerprint,
    migration_head,
    populated,
    restore,
    snapshot,
)

ENGINES = ["sqlite", "sqlite-wal", "postgresql"]
UNREACHABLE = "postgresql://postgres:s3cret@127.0.0.1:1/x"

# The app's database as the current release left it, and what a failed release then did.
SCHEMA = (
    "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT NOT NULL)",
    "INSERT INTO users (id, name) VALUES (1, 'ada'), (2, 'grace')",
    "CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL PRIMARY KEY)",
    "INSERT INTO alembic_version VALUES ('aaa111')",
)
FAILED_RELEASE = (
    "INSERT INTO users (id, name) VALUES (3, 'linus')",
    "ALTER TABLE users ADD COLUMN email TEXT",
    "UPDATE users SET email = 'ada@example.com' WHERE id = 1",
    "CREATE TABLE orders (id INTEGER PRIMARY KEY, user_id INTEGER)",
    "INSERT INTO orders VALUES (1, 1)",
    "UPDATE alembic_version SET version_num = 'bbb222'",
)


@pytest.fixture(params=ENGINES)
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database: a SQLite file (sqlite:////absolute/app.db) or PostgreSQL."""
    if request.param == "postgresql":
        found: str = request.getfixturevalue("postgres_url")
        return found
    with closing(sqlite3.connect(tmp_path / "app.db")) as conn:
        if request.param == "sqlite-wal":
            conn.execute("PRAGMA journal_mode=WAL")
    return f"sqlite:///{tmp_path / 'app.db'}"


@pytest.fixture
def app(url: str) -> str:
    """A database holding SCHEMA."""
    run(url, *SCHEMA)
    return url


def run(url: str, *statements: str) -> list[tuple[Any, ...]]:
    """Execute statements as the app would, each committed; the rows of the last one."""
    rows: list[tuple[Any, ...]] = []
    if url.startswith("sqlite"):
        with closing(sqlite3.connect(url.removeprefix("sqlite:///"))) as lite:
            for statement in statements:
                rows = lite.execute(statement).fetchall()
                lite.commit()
        return rows
    with psycopg.connect(url, autocommit=True) as conn:
        for statement in statements:
            cursor = conn.execute(statement)
            rows = cursor.fetchall() if cursor.description else []
    return rows


def tables(url: str) -> list[str]:
    if url.startswith("sqlite"):
        query = "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"
    else:
        query = (
            "SELECT table_name FROM information_schema.tables "
            "WHERE table_schema = 'public' ORDER BY table_name"
        )
    return [name for (name,) in run(url, query)]


def columns(url: str, table: str) -> list[str]:
    if url.startswith("sqlite"):
        query = f"SELECT name FROM pragma_table_info('{table}') ORDER BY cid"
    else:
        query = (
            "SELECT column_name FROM information_schema.columns "
            f"WHERE table_name = '{table}' ORDER BY ordinal_position"
        )
    return [name for (name,) in run(url, query)]


def users(url: str) -> list[tuple[Any, ...]]:
    return run(url, "SELECT id, name FROM users ORDER BY id")


def test_restore_puts_back_rows_columns_tables_and_head(app: str, tmp_path: Path) -> None:
    snap = snapshot(app, tmp_path / "snaps" / "before.dump")
    assert snap.migration_head == "aaa111"
    assert fingerprint(app) == snap.fingerprint
    assert snap.path.is_file()
    assert not snap.path.with_name("before.dump.tmp").exists()
    run(app, *FAILED_RELEASE)
    assert tables(app) == ["alembic_version", "orders", "users"]
    assert migration_head(app) == "bbb222"
    assert fingerprint(app) != snap.fingerprint

    restore(snap, app)

    assert users(app) == [(1, "ada"), (2, "grace")]
    assert columns(app, "users") == ["id", "name"]
    assert tables(app) == ["alembic_version", "users"]
    assert migration_head(app) == "aaa111"
    assert fingerprint(app) == snap.fingerprint
    run(app, *FAILED_RELEASE)  # the release can run again on the restored database
    assert migration_head(app) == "bbb222"


def test_restore_while_the_old_app_stays_connected(app: str, tmp_path: Path) -> None:
    snap = snapshot(app, tmp_path / "before.dump")
    run(app, *FAILED_RELEASE)
    if app.startswith("sqlite"):
        with closing(sqlite3.connect(app.removeprefix("sqlite:///"))) as old:
            assert len(old.execute("SELECT * FROM users").fetchall()) == 3
            restore(snap, app)
            assert old.execute("SELECT * FROM users ORDER BY id").fetchall() == [
                (1, "ada"),
                (2, "grace"),
            ]
            assert old.execute("SELECT version_num FROM alembic_version").fetchall() == [
                ("aaa111",)
            ]
    else:
        with psycopg.connect(app, autocommit=True) as old:
            assert len(old.execute("SELECT * FROM users").fetchall()) == 3
            restore(snap, app)
            assert old.execute("SELECT * FROM users ORDER BY id").fetchall() == [
                (1, "ada"),
                (2, "grace"),
            ]
            assert old.execute("SELECT version_num FROM alembic_version").fetchall() == [
                ("aaa111",)
            ]


def test_restore_drops_tables_made_after_a_snapshot_without_alembic(
    url: str, tmp_path: Path
) -> None:
    run(url, "CREATE TABLE users (id INTEGER PRIMARY KEY)")
    snap = snapshot(url, tmp_path / "before.dump")
    assert snap.migration_head is None
    run(url, *SCHEMA[2:])  # the first migration creates alembic_version
    restore(snap, url)
    assert tables(url) == ["users"]
    assert migration_head(url) is None


def test_postgres_restore_drops_every_kind_of_newer_object(
    postgres_url: str, tmp_path: Path
) -> None:
    run(
        postgres_url,
        *SCHEMA,
        "CREATE TABLE keep (id SERIAL PRIMARY KEY)",
        "CREATE SCHEMA crm",
        "CREATE TYPE crm.stage AS ENUM ('lead', 'won')",
        "CREATE TABLE crm.deals (id INTEGER GENERATED ALWAYS AS IDENTITY, stage crm.stage)",
        "INSERT INTO crm.deals (stage) VALUES ('lead'), ('won')",
        "CREATE VIEW crm.won AS SELECT id FROM crm.deals WHERE stage = 'won'",
    )
    snap = snapshot(postgres_url, tmp_path / "before.dump")
    migration = (
        "CREATE SCHEMA billing",
        "CREATE TABLE billing.invoices (id INTEGER)",
        "CREATE TYPE mood AS ENUM ('happy', 'sad')",
        "CREATE DOMAIN positive AS INTEGER CHECK (VALUE > 0)",
        "ALTER TABLE users ADD COLUMN feeling mood",
        "ALTER TABLE users ADD COLUMN n INTEGER GENERATED ALWAYS AS IDENTITY",
        'CREATE TABLE "Odd ""Name""" (id SERIAL, p positive)',
        "CREATE SEQUENCE tickets",
        "CREATE VIEW names AS SELECT name FROM users",
        "CREATE MATERIALIZED VIEW counted AS SELECT count(*) FROM users",
    )
    run(postgres_url, *migration, "INSERT INTO crm.deals (stage) VALUES ('won')")

    restore(snap, postgres_url)

    assert tables(postgres_url) == ["alembic_version", "keep", "users"]
    assert columns(postgres_url, "users") == ["id", "name"]
    assert run(postgres_url, "SELECT nspname FROM pg_namespace WHERE nspname = 'billing'") == []
    assert run(postgres_url, "SELECT id FROM crm.won") == [(2,)]  # kept, with its data
    assert fingerprint(postgres_url) == snap.fingerprint
    run(postgres_url, *migration)  # the same migration runs again without a clash


def test_postgres_restore_gives_up_on_a_transaction_that_holds_its_lock(
    postgres_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run(postgres_url, *SCHEMA)
    snap = snapshot(postgres_url, tmp_path / "before.dump")
    run(postgres_url, *FAILED_RELEASE)
    monkeypatch.setattr(databases, "LOCK_TIMEOUT_S", 0.3)
    with psycopg.connect(postgres_url) as stuck:  # idle in transaction, holding a lock
        stuck.execute("SELECT * FROM users").fetchall()
        with pytest.raises(PlatformError, match="lock timeout") as raised:
            restore(snap, postgres_url)
    assert str(raised.value).startswith(f"cannot restore {postgres_url} from {snap.path}: ")
    assert "\n" not in str(raised.value)
    assert tables(postgres_url) == ["alembic_version", "orders", "users"]  # untouched
    assert migration_head(postgres_url) == "bbb222"


def test_sqlite_restore_gives_up_on_a_connection_that_keeps_its_lock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite:///{tmp_path / 'app.db'}"
    run(url, *SCHEMA)
    snap = snapshot(url, tmp_path / "before.dump")
    run(url, *FAILED_RELEASE)
    monkeypatch.setattr(databases, "SQLITE_BUSY_S", 0.2)
    with closing(sqlite3.connect(tmp_path / "app.db", isolation_level=None)) as writer:
        writer.execute("BEGIN EXCLUSIVE")
        with pytest.raises(PlatformError, match="locked"):
            restore(snap, url)
        writer.execute("ROLLBACK")
    assert migration_head(url) == "bbb222"


def test_fingerprint_follows_the_schema_not_the_data(app: str) -> None:
    before = fingerprint(app)
    assert len(before) == 16
    run(app, "INSERT INTO users (id, name) VALUES (3, 'linus')")
    assert fingerprint(app) == before
    run(app, "ALTER TABLE users ADD COLUMN email TEXT")
    assert fingerprint(app) != before


def test_migration_head(url: str) -> None:
    assert migration_head(url) is None
    run(url, *SCHEMA[2:])
    assert migration_head(url) == "aaa111"
    run(url, "INSERT INTO alembic_version VALUES ('0ab')")  # two branches
    assert migration_head(url) == "0ab,aaa111"


def test_populated_counts_values_and_is_zero_for_what_is_missing(app: str) -> None:
    run(
        app,
        "ALTER TABLE users ADD COLUMN email TEXT",
        "UPDATE users SET email = 'ada@example.com' WHERE id = 1",
        'CREATE TABLE "Order Items" ("select" TEXT)',
        """INSERT INTO "Order Items" VALUES ('a'), ('b'), (NULL)""",
    )
    assert populated(app, "users", "name") == 2
    assert populated(app, "users", "email") == 1
    assert populated(app, "Order Items", "select") == 2
    assert populated(app, "users", "nope") == 0
    assert populated(app, "nope", "name") == 0
    assert populated(app, 'users" --', "name") == 0


def test_snapshot_load_reads_a_kept_dump_again(app: str, tmp_path: Path) -> None:
    snap = snapshot(app, tmp_path / "before.dump")
    run(app, *FAILED_RELEASE)
    loaded = Snapshot.load(snap.path, app)
    assert (loaded.engine, loaded.migration_head, loaded.fingerprint) == (
        snap.engine,
        "aaa111",
        snap.fingerprint,
    )
    restore(loaded, app)
    assert users(app) == [(1, "ada"), (2, "grace")]


def test_snapshot_replaces_an_older_dump(app: str, tmp_path: Path) -> None:
    dest = tmp_path / "before.dump"
    old = snapshot(app, dest)
    run(app, *FAILED_RELEASE)
    new = snapshot(app, dest)
    assert (old.migration_head, new.migration_head) == ("aaa111", "bbb222")
    assert Snapshot.load(dest, app).migration_head == "bbb222"
    assert sorted(p.name for p in tmp_path.iterdir() if "dump" in p.name) == ["before.dump"]


@pytest.mark.parametrize(
    "form", ["sqlite:///app.db", "sqlite+pysqlite:///app.db", "app.db", "ABSOLUTE"]
)
def test_sqlite_urls(form: str, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'app.db'}"  # the tests run in tmp_path
    run(url, *SCHEMA)
    given = str(tmp_path / "app.db") if form == "ABSOLUTE" else form
    assert migration_head(given) == "aaa111"
    assert snapshot(given, Path("snap.db")).migration_head == "aaa111"


def test_postgres_url_with_a_driver_and_a_password(postgres_url: str, tmp_path: Path) -> None:
    url = postgres_url.replace("postgresql://postgres@", "postgresql+psycopg://postgres:pw@")
    run(postgres_url, *SCHEMA)
    snap = snapshot(url, tmp_path / "before.dump")
    assert snap.url == url.replace(":pw@", ":***@")
    assert (snap.engine, migration_head(url), populated(url, "users", "id")) == (
        "postgresql",
        "aaa111",
        2,
    )
    restore(snap, url)


@pytest.mark.parametrize(
    "call",
    [
        lambda: snapshot(UNREACHABLE, Path("x.dump")),
        lambda: fingerprint(UNREACHABLE),
        lambda: migration_head(UNREACHABLE),
        lambda: populated(UNREACHABLE, "users", "id"),
        lambda: Snapshot.load(Path("x.dump"), UNREACHABLE),
    ],
    ids=["snapshot", "fingerprint", "migration_head", "populated", "load"],
)
def test_unreachable_postgres(call: Any) -> None:
    Path("x.dump").write_bytes(b"PGDMP")
    with pytest.raises(PlatformError) as raised:
        call()
    message = str(raised.value)
    assert "postgresql://postgres:***@127.0.0.1:1/x" in message
    assert "s3cret" not in message
    assert "\n" not in message
    assert not Path("x.dump.tmp").exists()


def test_restore_into_unreachable_postgres(postgres_url: str, tmp_path: Path) -> None:
    snap = snapshot(postgres_url, tmp_path / "before.dump")
    with pytest.raises(PlatformError, match="refused") as raised:
        restore(snap, UNREACHABLE)
    assert str(raised.value).startswith(
        f"cannot restore postgresql://postgres:***@127.0.0.1:1/x from {snap.path}: "
    )
    assert "s3cret" not in str(raised.value)


def test_restore_from_a_missing_snapshot(app: str, tmp_path: Path) -> None:
    url = app.replace("postgresql://postgres@", "postgresql://postgres:s3cret@")
    snap = snapshot(url, tmp_path / "before.dump")
    snap.path.unlink()
    with pytest.raises(PlatformError, match="no such snapshot file") as raised:
        restore(snap, url)
    assert str(snap.path) in str(raised.value)
    assert "s3cret" not in str(raised.value)
    with pytest.raises(PlatformError, match="no such snapshot file"):
        Snapshot.load(snap.path, url)


def test_restore_from_a_corrupt_snapshot_changes_nothing(app: str, tmp_path: Path) -> None:
    snap = snapshot(app, tmp_path / "before.dump")
    run(app, *FAILED_RELEASE)
    snap.path.write_bytes(b"not a dump at all\n" * 100)
    with pytest.raises(PlatformError, match=f"cannot restore .* from {snap.path}: .+"):
        restore(snap, app)
    assert migration_head(app) == "bbb222"
    assert len(users(app)) == 3


def test_restore_needs_a_snapshot_of_the_same_engine(app: str, tmp_path: Path) -> None:
    snap = snapshot(app, tmp_path / "before.dump")
    other = "postgresql" if snap.engine == "sqlite" else "sqlite"
    with pytest.raises(UsageError, match=f"cannot restore a {other} snapshot"):
        restore(replace(snap, engine=other), app)


def test_missing_database_and_unsupported_urls(tmp_path: Path) -> None:
    with pytest.raises(PlatformError, match="no such database file"):
        migration_head(f"sqlite:///{tmp_path / 'nothing.db'}")
    assert not (tmp_path / "nothing.db").exists()
    with pytest.raises(UsageError, match="unsupported database URL mysql://u:\\*\\*\\*@h/db"):
        fingerprint("mysql://u:pw@h/db")
    with pytest.raises(UsageError, match="names no SQLite file"):
        fingerprint("sqlite://")


def test_missing_pg_dump(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    def nowhere() -> Path:
        raise PlatformError("PostgreSQL server binaries not found")

    monkeypatch.setattr(databases, "find_binaries", nowhere)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(PlatformError, match=r"\*\*\*@127.0.0.1:1/x: pg_dump not found"):
        snapshot(UNREACHABLE, tmp_path / "x.dump")


def test_snapshot_where_no_file_can_be_written(app: str, tmp_path: Path) -> None:
    (tmp_path / "taken").write_text("a file, not a directory")
    with pytest.raises(PlatformError, match=f"cannot snapshot .* into {tmp_path}/taken/x.dump"):
        snapshot(app, tmp_path / "taken" / "x.dump")


def test_populated_counts_the_rows_of_a_table_without_a_column(url: str) -> None:
    run(url, "CREATE TABLE plays (id INTEGER)", "INSERT INTO plays VALUES (1), (NULL)")
    assert databases.populated(url, "plays") == 2
    assert databases.populated(url, "plays", "id") == 1
    assert databases.populated(url, "no_such_table") == 0
