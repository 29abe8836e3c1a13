"""Where the state lives: a state URL turned into a ready SQLAlchemy engine.

No URL means SQLite at ``.tiers/state.db`` beside tiers.toml, in WAL mode with a busy
timeout, so a deploy, a ``tiers status`` and CI on the same machine can use it at once.
A URL means a shared database, normally PostgreSQL (``postgresql://`` is read as the
psycopg 3 driver). Database errors are translated here into :mod:`tiers.errors`, naming
the URL with its password hidden:

>>> engine = connect("postgresql://ci:s3cret@db.internal/tiers", Path("."))  # doctest: +SKIP
tiers.errors.OperationError: cannot use the state database
postgresql://ci:***@db.internal/tiers: connection failed: ... Connection refused; ...
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection, Engine

from tiers.errors import OperationError, UsageError
from tiers.state.schema import metadata

DEFAULT_PATH = Path(".tiers") / "state.db"
BUSY_TIMEOUT_MS = 10_000  # how long SQLite waits for another process's write to end
CONNECT_TIMEOUT_S = 10  # how long PostgreSQL may take to answer before we give up
_DRIVERS = {"postgresql": "postgresql+psycopg", "postgres": "postgresql+psycopg"}
_BACKENDS = ("sqlite", "postgresql")
_EXAMPLES = "postgresql://USER:PASSWORD@HOST:5432/DATABASE or sqlite:///PATH/state.db"
_HINT = (
    "check the state URL and that the database server is running and reachable, "
    f"or leave the state URL unset to keep state in {DEFAULT_PATH}"
)
_SQLITE_HINT = "check that the file and its directory are writable, on a local disk"


def parse(url: str | None, project_dir: Path) -> URL:
    """The SQLAlchemy URL for a state URL; a malformed one is a :class:`UsageError`."""
    if url is None:
        return sa.make_url(f"sqlite:///{project_dir / DEFAULT_PATH}")
    try:
        parsed = sa.make_url(url)
        parsed.port  # noqa: B018 - a non-numeric port only fails when read
    except (sa.exc.ArgumentError, ValueError):
        raise UsageError(f"invalid state URL {redact(url)}; expected {_EXAMPLES}") from None
    if parsed.get_backend_name() not in (*_BACKENDS, "postgres"):
        raise UsageError(
            f"unsupported state URL {redact(url)}: tiers keeps state in PostgreSQL or "
            f"SQLite; expected {_EXAMPLES}"
        )
    return parsed.set(drivername=_DRIVERS.get(parsed.drivername, parsed.drivername))


def redact(url: str | URL) -> str:
    """The URL as it may be shown: any password replaced by ``***``."""
    if isinstance(url, URL):
        return url.render_as_string(hide_password=True)
    return re.sub(r"(://[^:/@]*:)[^@/]*@", r"\1***@", url)


def connect(url: str | None, project_dir: Path) -> Engine:
    """An engine whose database answers and has the state tables."""
    parsed = parse(url, project_dir)
    shown = redact(url) if url is not None else redact(parsed)
    if url is None:
        _make_directory(project_dir / DEFAULT_PATH.parent)
    try:
        engine = _engine(parsed)
    except ImportError as exc:
        raise UsageError(f"state URL {shown}: its driver is not installed ({exc})") from None
    try:
        with translated(shown):
            _create_tables(engine)
    except BaseException:
        engine.dispose()
        raise
    return engine


def _make_directory(directory: Path) -> None:
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OperationError(
            f"cannot create {directory} for the state database: {exc.strerror}; "
            "make the project directory writable or give a state URL"
        ) from exc


def _engine(url: URL) -> Engine:
    if url.get_backend_name() != "sqlite":
        return sa.create_engine(url, connect_args={"connect_timeout": CONNECT_TIMEOUT_S})
    engine = sa.create_engine(url)
    sa.event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")  # first: WAL may have to wait
    cursor.execute("PRAGMA journal_mode = WAL")
    cursor.execute("PRAGMA synchronous = NORMAL")
    cursor.execute("PRAGMA foreign_keys = ON")
    cursor.close()


def _create_tables(engine: Engine) -> None:
    with engine.connect():  # an unreachable server fails here, once
        pass
    # Two processes opening a new store at once may both see a table missing and both
    # create it; the loser fails, and its second look finds the table there.
    try:
        metadata.create_all(engine)
    except (sa.exc.ProgrammingError, sa.exc.IntegrityError, sa.exc.OperationalError):
        metadata.create_all(engine)


@contextlib.contextmanager
def translated(shown_url: str) -> Iterator[None]:
    """Turn database errors raised inside into one-line :class:`OperationError`\\ s."""
    try:
        yield
    except sa.exc.DBAPIError as exc:
        reason = " ".join(str(exc.orig).strip().splitlines()[0].split()) or type(exc).__name__
        hint = _SQLITE_HINT if shown_url.startswith("sqlite") else _HINT
        raise OperationError(
            f"cannot use the state database {shown_url}: {reason}; {hint}"
        ) from exc


def now(connection: Connection) -> datetime:
    """The current time by the database's clock, so machines that disagree still agree.

    SQLite is a file on this machine, so its clock is ours.
    """
    if connection.dialect.name == "sqlite":
        return datetime.now(UTC)
    moment: datetime = connection.execute(sa.select(sa.func.clock_timestamp())).scalar_one()
    return moment.astimezone(UTC)


@contextlib.contextmanager
def transaction(engine: Engine, shown_url: str) -> Iterator[Connection]:
    """A connection in a transaction, committed at the end; database errors translated."""
    with translated(shown_url), engine.begin() as connection:
        yield connection
