"""Snapshot, restore and inspect an environment's database, PostgreSQL or SQLite.

The deploy pipeline dumps the database before the release command runs the app's
migrations, restores the dump when the release fails, and reads the migration head. The
old version of the app keeps serving from the same database meanwhile, so both ends work
with other connections open:

- PostgreSQL: ``pg_dump --format=custom`` takes a consistent dump without blocking
  readers or writers. A restore runs as one transaction (``psql --single-transaction``):
  first the objects made since the snapshot (tables, views, sequences, types, schemas)
  are dropped, then ``pg_restore --clean --if-exists`` drops and recreates everything the
  dump holds. Other connections see the old state or the restored one, never a half.
- SQLite: the online backup API copies the live file into the dump and the dump back into
  the live file; other connections see the restored content on their next read.

Client programs come from the machine's PostgreSQL (:func:`find_binaries`, then PATH) and
connect with the URL's own user; a password is handed over in ``PGPASSWORD``, never on
the command line. Every failure is a :class:`PlatformError` of one line naming the
database with its password hidden:

>>> snap = snapshot("postgresql://app:s3cret@127.0.0.1/shop", Path("before.dump"))  # doctest: +SKIP
>>> snap.migration_head, snap.fingerprint  # doctest: +SKIP
('3f2a9c1d0b7e', '9c1e5d0a2b4f7a18')
>>> run_migrations()  # fails half way  # doctest: +SKIP
>>> if fingerprint(url) != snap.fingerprint:  # doctest: +SKIP
...     restore(snap, url)
>>> restore(snap, "postgresql://app:s3cret@127.0.0.1:1/shop")  # doctest: +SKIP
tiers.errors.PlatformError: cannot restore postgresql://app:***@127.0.0.1:1/shop from
before.dump: connection failed: connection to server at "127.0.0.1", port 1 failed:
Connection refused Is the server running on that host and accepting TCP/IP connections?
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import sqlite3
import subprocess
import tempfile
import time
from collections.abc import Iterable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import psycopg
from psycopg import sql

from tiers.config.model import redact
from tiers.errors import PlatformError, UsageError
from tiers.providers.binaries import find_binaries

__all__ = ["Snapshot", "fingerprint", "migration_head", "populated", "restore", "snapshot"]

DUMP_TIMEOUT_S = 3600.0  # a pg_dump, pg_restore or psql run over a whole database
QUERY_TIMEOUT_S = 300.0  # a schema-only dump
CONNECT_TIMEOUT_S = 10  # how long a PostgreSQL server may take to answer
LOCK_TIMEOUT_S = 60.0  # how long a restore waits for the old app's transactions to end
SQLITE_BUSY_S = 60.0  # how long a SQLite backup waits for another connection's lock

_SCHEME = re.compile(r"(?P<base>[A-Za-z][A-Za-z0-9.-]*)(?:\+[A-Za-z0-9_]+)?://")
_POSTGRES = ("postgresql", "postgres")
_EXPECTED = "expected postgresql://USER:PASSWORD@HOST:5432/DB, sqlite:///PATH or a file path"
_NO_ACL = ("--no-owner", "--no-privileges")  # the dump restores as whoever restores it
_STDERR_LINES = 3
_FINGERPRINT_HEX = 16
# One object of `pg_restore --list`: "215; 1259 16386 TABLE public users postgres".
_TOC = re.compile(
    r"\d+; \d+ \d+ (?P<kind>MATERIALIZED VIEW|FOREIGN TABLE|TABLE|VIEW|SEQUENCE|TYPE|DOMAIN|"
    r"SCHEMA) (?!DATA |SET |OWNED BY )(?P<schema>\S+) (?P<name>.+) \S+"
)
_CATEGORY = {
    "MATERIALIZED VIEW": "relation",
    "FOREIGN TABLE": "relation",
    "TABLE": "relation",
    "VIEW": "relation",
    "SEQUENCE": "relation",
    "TYPE": "type",
    "DOMAIN": "type",
    "SCHEMA": "schema",
}
# The user's objects in the live database as (category, kind, schema, name), leaving out
# system schemas, extension members and sequences that go with their table's column.
_LIVE_OBJECTS = r"""
WITH ext AS (SELECT classid, objid FROM pg_depend WHERE deptype = 'e'),
user_ns AS (
    SELECT oid, nspname FROM pg_namespace
    WHERE nspname <> 'information_schema' AND nspname NOT LIKE 'pg\_%'
)
SELECT 'schema', 'SCHEMA', n.nspname, n.nspname FROM user_ns n
WHERE n.nspname <> 'public'
  AND (n.oid NOT IN (SELECT objid FROM ext WHERE classid = 'pg_namespace'::regclass))
UNION ALL
SELECT 'relation', CASE c.relkind WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW'
    WHEN 'S' THEN 'SEQUENCE' WHEN 'f' THEN 'FOREIGN TABLE' ELSE 'TABLE' END,
    n.nspname, c.relname
FROM pg_class c JOIN user_ns n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')
  AND c.oid NOT IN (SELECT objid FROM ext WHERE classid = 'pg_class'::regclass)
  AND c.oid NOT IN (
    SELECT objid FROM pg_depend WHERE classid = 'pg_class'::regclass
      AND refclassid = 'pg_class'::regclass AND deptype IN ('a', 'i')
  )
UNION ALL
SELECT 'type', CASE t.typtype WHEN 'd' THEN 'DOMAIN' ELSE 'TYPE' END, n.nspname, t.typname
FROM pg_type t JOIN user_ns n ON n.oid = t.typnamespace
WHERE (t.typtype IN ('e', 'r', 'd')
    OR (t.typtype = 'c' AND (SELECT relkind FROM pg_class WHERE oid = t.typrelid) = 'c'))
  AND t.oid NOT IN (SELECT objid FROM ext WHERE classid = 'pg_type'::regclass)
"""


@dataclass(frozen=True)
class Snapshot:
    """A dump of one database: where it is, where it came from, and what it holds."""

    path: Path  # the dump file
    url: str  # redacted URL of the database it came from
    engine: str  # "postgresql" | "sqlite"
    migration_head: str | None
    fingerprint: str  # schema fingerprint at snapshot time
    taken_at: datetime

    @classmethod
    def load(cls, path: Path, url: str) -> Snapshot:
        """A dump file kept from an earlier :func:`snapshot` of ``url``, read again.

        Head and fingerprint are read from the file itself; ``taken_at`` is its mtime.
        """
        db = _parse(url)
        doing = f"read snapshot {path} of {db.shown}"
        if not path.is_file():
            raise _failed(db, doing, "no such snapshot file")
        return _describe(db, path, datetime.fromtimestamp(path.stat().st_mtime, UTC))


@dataclass(frozen=True)
class _Lite:
    path: Path
    shown: str
    secret: None = None  # like _Pg's: a file has no password


@dataclass(frozen=True)
class _Pg:
    dsn: str  # for libpq: no +driver, no password
    shown: str
    secret: str | None  # the password, handed over in PGPASSWORD

    def env(self) -> dict[str, str]:
        env = {**os.environ, "PGCONNECT_TIMEOUT": str(CONNECT_TIMEOUT_S)}
        if self.secret is not None:
            env["PGPASSWORD"] = self.secret
        return env


def snapshot(url: str, dest: Path) -> Snapshot:
    """Dump the database at ``url`` into ``dest`` (replaced whole, never left half written).

    >>> snapshot("sqlite:///app.db", Path("snap.db")).engine  # doctest: +SKIP
    'sqlite'
    """
    db = _parse(url)
    taken_at = datetime.now(UTC)
    partial = dest.with_name(dest.name + ".tmp")
    with _os_errors(db, f"snapshot {db.shown} into {dest}"):
        dest.parent.mkdir(parents=True, exist_ok=True)
        partial.unlink(missing_ok=True)
        try:
            if isinstance(db, _Lite):
                _lite_dump(db, partial)
            else:
                _pg_dump(db, partial)
            partial.replace(dest)
        finally:
            partial.unlink(missing_ok=True)
    return _describe(db, dest, taken_at)


def restore(snap: Snapshot, url: str) -> None:
    """Put the database at ``url`` back exactly as in ``snap``, in one step, online.

    Tables and other objects made since the snapshot are dropped; rows, columns and the
    migration head are the snapshot's. Other connections stay open and then see the
    restored data.
    """
    db = _parse(url)
    engine = "sqlite" if isinstance(db, _Lite) else "postgresql"
    if snap.engine != engine:
        raise UsageError(f"cannot restore a {snap.engine} snapshot into {engine} {db.shown}")
    doing = f"restore {db.shown} from {snap.path}"
    if not snap.path.is_file():
        raise _failed(db, doing, "no such snapshot file")
    if isinstance(db, _Lite):
        _lite_restore(snap.path, db, doing)
    else:
        _pg_restore(snap.path, db, doing)


def migration_head(url: str) -> str | None:
    """The alembic revision(s) in ``alembic_version``, sorted and comma-joined; None when
    the table does not exist or is empty."""
    db = _parse(url)
    doing = f"read the migration head of {db.shown}"
    if isinstance(db, _Lite):
        with _lite_file(db.path, db, doing) as conn:
            return _lite_head(conn)
    with _pg_session(db, doing) as conn:
        found = conn.execute("SELECT to_regclass('alembic_version')").fetchone()
        if found is None or found[0] is None:
            return None
        rows = conn.execute("SELECT version_num FROM alembic_version").fetchall()
    return _head(str(row[0]) for row in rows)


def fingerprint(url: str) -> str:
    """A short hash of the schema (not the data): equal fingerprints, same schema."""
    db = _parse(url)
    doing = f"read the schema of {db.shown}"
    if isinstance(db, _Lite):
        with _lite_file(db.path, db, doing) as conn:
            return _lite_print(conn)
    schema = _run(
        db, doing, ["pg_dump", "--schema-only", *_NO_ACL, f"--dbname={db.dsn}"], QUERY_TIMEOUT_S
    )
    return _pg_print(schema)


def populated(url: str, table: str, column: str | None = None) -> int:
    """How many rows of ``table`` hold a value (not NULL) in ``column``, or how many rows
    it has when ``column`` is None; 0 when either is missing. ``table`` is found through
    the search path (PostgreSQL's ``public``)."""
    db = _parse(url)
    doing = f"count {table}.{column or '*'} in {db.shown}"
    if isinstance(db, _Lite):
        with _lite_file(db.path, db, doing) as conn:
            return _lite_count(conn, table, column)
    what = sql.SQL("*") if column is None else sql.Identifier(column)
    count = sql.SQL("SELECT count({}) FROM {}").format(what, sql.Identifier(table))
    with _pg_session(db, doing) as conn:
        exists = conn.execute(
            "SELECT 1 FROM pg_attribute WHERE attrelid = to_regclass(quote_ident(%s))"
            " AND (%s::text IS NULL OR attname = %s) AND attnum > 0 AND NOT attisdropped",
            (table, column, column),
        ).fetchone()
        found = conn.execute(count).fetchone() if exists else None
    return int(found[0]) if found else 0


# --- URLs and errors -------------------------------------------------------------------


def _parse(url: str) -> _Lite | _Pg:
    match = _SCHEME.match(url)
    if match is None:
        if not url.strip():
            raise UsageError(f"empty database URL; {_EXPECTED}")
        return _Lite(Path(url), url)
    base, rest = match["base"].lower(), url[match.end() :]
    if base == "sqlite":
        return _lite_url(url, rest)
    if base in _POSTGRES:
        return _pg_url(url, rest)
    raise UsageError(f"unsupported database URL {redact(url)}; {_EXPECTED}")


def _lite_url(url: str, rest: str) -> _Lite:
    path = rest.split("?", 1)[0]
    if not path.startswith("/") or path in ("/", "/:memory:"):
        raise UsageError(f"{redact(url)} names no SQLite file; {_EXPECTED}")
    return _Lite(Path(unquote(path[1:])), redact(url))


def _pg_url(url: str, rest: str) -> _Pg:
    parts = urlsplit(f"postgresql://{rest}")
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, host = netloc.rsplit("@", 1)
        user = userinfo.split(":", 1)[0]
        netloc = f"{user}@{host}" if user else host
    secret = unquote(parts.password) if parts.password is not None else None
    dsn = f"postgresql://{netloc}{rest[len(parts.netloc) :]}"
    return _Pg(dsn, redact(url), secret)


def _failed(db: _Lite | _Pg, doing: str, detail: str) -> PlatformError:
    """One line: what could not be done to which database, and the last words of why."""
    lines = [line.strip() for line in detail.splitlines() if line.strip()]
    why = " ".join(lines[-_STDERR_LINES:]) or "no reason given"
    if db.secret:
        why = why.replace(db.secret, "***")
    return PlatformError(f"cannot {doing}: {why}")


@contextmanager
def _os_errors(db: _Lite | _Pg, doing: str) -> Iterator[None]:
    try:
        yield
    except OSError as exc:
        raise _failed(db, doing, f"{exc.strerror or exc}: {exc.filename or ''}") from None


def _describe(db: _Lite | _Pg, path: Path, taken_at: datetime) -> Snapshot:
    """The snapshot in a dump file: head and fingerprint as the file holds them."""
    if isinstance(db, _Pg):
        return _pg_describe(db, path, taken_at)
    with _lite_file(path, db, f"read snapshot {path} of {db.shown}") as conn:
        return Snapshot(path, db.shown, "sqlite", _lite_head(conn), _lite_print(conn), taken_at)


def _head(versions: Iterable[str]) -> str | None:
    return ",".join(sorted(versions)) or None


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:_FINGERPRINT_HEX]


# --- SQLite ----------------------------------------------------------------------------


@contextmanager
def _lite_file(
    path: Path, db: _Lite | _Pg, doing: str, mode: str = "ro"
) -> Iterator[sqlite3.Connection]:
    """An open connection to an existing SQLite file; errors become PlatformError."""
    if mode != "rwc" and not path.is_file():
        raise _failed(db, doing, f"no such database file {path}")
    uri = f"{path.resolve().as_uri()}?mode={mode}"
    try:
        with closing(sqlite3.connect(uri, uri=True, timeout=SQLITE_BUSY_S)) as conn:
            conn.execute("PRAGMA schema_version").fetchone()  # fails on a non-database
            yield conn
    except sqlite3.Error as exc:
        raise _failed(db, doing, f"{path}: {exc}") from None


def _lite_dump(db: _Lite, dest: Path) -> None:
    doing = f"snapshot {db.shown}"
    with _lite_file(db.path, db, doing, "rw") as live, _lite_file(dest, db, doing, "rwc") as copy:
        _copy(live, copy, db, doing)
        copy.execute("PRAGMA journal_mode=DELETE").fetchone()  # one file, no -wal beside


def _lite_restore(path: Path, db: _Lite, doing: str) -> None:
    with _lite_file(path, db, doing) as snap, _lite_file(db.path, db, doing, "rwc") as live:
        _copy(snap, live, db, doing)


def _copy(src: sqlite3.Connection, dst: sqlite3.Connection, db: _Lite, doing: str) -> None:
    """The online backup, giving up once another connection's lock outlasts SQLITE_BUSY_S."""
    deadline = time.monotonic() + SQLITE_BUSY_S

    def waited(status: int, remaining: int, total: int) -> None:
        if status in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED) and time.monotonic() > deadline:
            raise _failed(db, doing, f"the database stayed locked for {SQLITE_BUSY_S:g} s")

    src.backup(dst, progress=waited, sleep=0.05)


def _lite_head(conn: sqlite3.Connection) -> str | None:
    if not _lite_has(conn, "alembic_version", "version_num"):
        return None
    rows = conn.execute("SELECT version_num FROM alembic_version").fetchall()
    return _head(str(row[0]) for row in rows)


def _lite_print(conn: sqlite3.Connection) -> str:
    rows = conn.execute("SELECT sql FROM sqlite_master WHERE sql IS NOT NULL").fetchall()
    return _digest("\n".join(sorted(str(row[0]) for row in rows)))


def _lite_count(conn: sqlite3.Connection, table: str, column: str | None) -> int:
    if not _lite_has(conn, table, column):
        return 0  # checked first: SQLite reads an unknown "column" as a string literal
    what = "*" if column is None else _quote(column)
    query = f"SELECT count({what}) FROM {_quote(table)}"
    return int(conn.execute(query).fetchone()[0])


def _lite_has(conn: sqlite3.Connection, table: str, column: str | None) -> bool:
    found = conn.execute(
        "SELECT 1 FROM pragma_table_info(?) WHERE ? IS NULL OR name = ?", (table, column, column)
    )
    return found.fetchone() is not None


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


# --- PostgreSQL ------------------------------------------------------------------------


def _pg_dump(db: _Pg, dest: Path) -> None:
    args = ["pg_dump", "--format=custom", *_NO_ACL, f"--file={dest}", f"--dbname={db.dsn}"]
    _run(db, f"snapshot {db.shown}", args, DUMP_TIMEOUT_S)


def _pg_describe(db: _Pg, path: Path, taken_at: datetime) -> Snapshot:
    doing = f"read snapshot {path} of {db.shown}"
    schema = _run(db, doing, ["pg_restore", "--schema-only", *_NO_ACL, "-f", "-", str(path)])
    data = _run(
        db, doing, ["pg_restore", "--data-only", "--table=alembic_version", "-f", "-", str(path)]
    )
    head = _head(_copied_rows(data))
    return Snapshot(path, db.shown, "postgresql", head, _pg_print(schema), taken_at)


def _copied_rows(script: str) -> Iterator[str]:
    """The rows of the COPY blocks in a plain-text dump."""
    inside = False
    for line in script.splitlines():
        if inside and line == "\\.":
            inside = False
        elif inside:
            yield line
        else:
            inside = line.startswith("COPY ")


def _pg_print(schema: str) -> str:
    """The fingerprint of ``pg_dump --schema-only``: no comments, blanks or random keys."""
    kept = [
        line
        for line in schema.splitlines()
        if line.strip() and not line.startswith(("--", "\\restrict", "\\unrestrict"))
    ]
    return _digest("\n".join(kept))


def _pg_restore(path: Path, db: _Pg, doing: str) -> None:
    """Drop what is newer than the dump and restore the dump, in one transaction."""
    with (
        _os_errors(db, doing),
        tempfile.TemporaryDirectory(prefix=".restore-", dir=path.parent) as work,
    ):
        script = Path(work) / "restore.sql"
        args = ["pg_restore", "--clean", "--if-exists", *_NO_ACL, f"--file={script}", str(path)]
        _run(db, doing, args, DUMP_TIMEOUT_S)
        prelude = _prelude(db, doing, _dumped(db, doing, path))
        psql = ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "--single-transaction"]
        _run(
            db,
            doing,
            [*psql, f"--dbname={db.dsn}", "-c", prelude, "-f", str(script)],
            DUMP_TIMEOUT_S,
        )


def _dumped(db: _Pg, doing: str, path: Path) -> set[tuple[str, str, str]]:
    """The objects a dump creates, as (category, schema, name)."""
    listing = _run(db, doing, ["pg_restore", "--list", str(path)])
    found = set()
    for line in listing.splitlines():
        if entry := _TOC.fullmatch(line):
            kind, schema, name = entry["kind"], entry["schema"], entry["name"]
            found.add((_CATEGORY[kind], name if kind == "SCHEMA" else schema, name))
    return found


def _prelude(db: _Pg, doing: str, dumped: set[tuple[str, str, str]]) -> str:
    """Take every table's lock (waiting LOCK_TIMEOUT_S at most) and drop the newer objects.

    An object dropped here that the dump holds after all is harmless: the dump recreates it.
    """
    with _pg_session(db, doing) as conn:
        live = [(str(a), str(b), str(c), str(d)) for a, b, c, d in conn.execute(_LIVE_OBJECTS)]
    tables = [f"{_quote(s)}.{_quote(n)}" for _, kind, s, n in live if kind == "TABLE"]
    statements = [f"SET LOCAL lock_timeout = '{int(LOCK_TIMEOUT_S * 1000)}ms'"]
    if tables:
        statements.append(f"LOCK TABLE {', '.join(tables)} IN ACCESS EXCLUSIVE MODE")
    statements += [
        f"DROP {kind} IF EXISTS {_quote(schema)}{'' if kind == 'SCHEMA' else '.' + _quote(name)} "
        "CASCADE"
        for category, kind, schema, name in live
        if (category, schema, name) not in dumped
    ]
    return ";\n".join(statements) + ";"


@contextmanager
def _pg_session(db: _Pg, doing: str) -> Iterator[psycopg.Connection[Any]]:
    try:
        with psycopg.connect(
            db.dsn, password=db.secret, connect_timeout=CONNECT_TIMEOUT_S, autocommit=True
        ) as conn:
            yield conn
    except psycopg.Error as exc:
        raise _failed(db, doing, str(exc)) from None


def _run(db: _Pg, doing: str, args: list[str], timeout: float = QUERY_TIMEOUT_S) -> str:
    """Run a PostgreSQL client program; its standard output."""
    command = [_program(db, doing, args[0]), *args[1:]]
    try:
        done = subprocess.run(
            command,
            capture_output=True,
            text=True,
            encoding="utf-8",
            errors="replace",
            timeout=timeout,
            env=db.env(),
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise _failed(db, doing, f"{args[0]} did not finish within {timeout:g} s") from None
    except OSError as exc:
        raise _failed(db, doing, f"cannot run {command[0]}: {exc.strerror}") from None
    if done.returncode != 0:
        raise _failed(db, doing, done.stderr or f"{args[0]} exited with {done.returncode}")
    return done.stdout


def _program(db: _Pg, doing: str, name: str) -> str:
    """The client program ``name`` beside the machine's PostgreSQL server, or on PATH."""
    try:
        beside = find_binaries() / name
    except PlatformError:
        beside = None
    if beside is not None and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which(name)
    if found is None:
        raise _failed(db, doing, f"{name} not found; install the PostgreSQL client programs")
    return found
