"""The deploy lock: one lease per environment, in the database, safe across machines.

Whoever deploys an environment holds a row in ``locks`` that expires ``lease_seconds``
after its last heartbeat; a thread renews it every third of that while the deploy runs,
and the row is deleted when the deploy ends. Taking the lock is one atomic statement
(insert if absent), or a conditional update that takes over a row whose lease ran out,
say because its holder was killed with SIGKILL and no longer beats. Nothing depends on
locks inside one process, so laptops and CI sharing a PostgreSQL state store exclude
each other as two shells on one machine do.

>>> with store.lock("staging", default_holder()) as lease:          # doctest: +SKIP
...     if lease.took_over:
...         print(f"took over a lock left by {lease.took_over.describe()}")
...     deploy()
tiers.errors.LockHeld: staging is being deployed by alice@laptop pid 1234 since
2026-11-26 01:02:03 UTC (deployment 7); wait for it or pass --wait to queue
"""

from __future__ import annotations

import getpass
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from tiers.errors import LockHeld, OperationError
from tiers.state import database
from tiers.state.schema import locks

POLL_SECONDS = 0.25  # how often a waiting deploy looks at the lock again


def default_holder() -> str:
    """Who we are, as a lock holder: ``user@host pid N``."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no login name for this uid (a bare container)
        user = f"uid {os.getuid()}"
    return f"{user}@{socket.gethostname()} pid {os.getpid()}"


def _dead_here(holder: str) -> bool:
    """True when ``holder`` (``user@host pid N``) is a process of this machine that is gone:
    its lease need not run out before the lock is taken over."""
    who, _, pid = holder.rpartition(" pid ")
    if who.rpartition("@")[2] != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


@dataclass(frozen=True)
class LockInfo:
    """Who holds (or held) an environment's lock, since when, for which deployment."""

    environment: str
    holder: str
    since: datetime
    expires_at: datetime
    deployment_id: int | None

    def describe(self) -> str:
        """``alice@laptop pid 1234 since 2026-11-26 01:02:03 UTC (deployment 7)``"""
        which = f" (deployment {self.deployment_id})" if self.deployment_id is not None else ""
        return f"{self.holder} since {self.since:%Y-%m-%d %H:%M:%S} UTC{which}"

    @property
    def abandoned(self) -> bool:
        """True when nobody holds it any more: the lease ran out or its holder is dead."""
        return self.expires_at <= datetime.now(UTC) or _dead_here(self.holder)

    @classmethod
    def from_row(cls, row: Any) -> LockInfo:
        return cls(row.environment, row.holder, row.acquired_at, row.expires_at, row.deployment_id)


def current(connection: Connection, environment: str) -> LockInfo | None:
    """The environment's lock, live or expired, if there is a row for it."""
    row = _row(connection, environment)
    return LockInfo.from_row(row) if row else None


def _row(connection: Connection, environment: str) -> Any:
    return connection.execute(sa.select(locks).where(locks.c.environment == environment)).first()


class Lease:
    """A held lock; the store's ``lock()`` makes one, renews it and deletes it at the end.

    ``took_over`` is the holder whose expired lease this one replaced, if any; ``lost``
    turns true when a heartbeat finds the row taken by someone else.
    """

    def __init__(
        self,
        engine: Engine,
        shown_url: str,
        environment: str,
        holder: str,
        lease_seconds: float,
        deployment_id: int | None,
    ) -> None:
        if lease_seconds <= 0:
            raise ValueError(f"lease_seconds must be positive, not {lease_seconds}")
        self.environment = environment
        self.holder = holder
        self.deployment_id = deployment_id
        self.lease_seconds = lease_seconds
        self.took_over: LockInfo | None = None
        self._engine = engine
        self._url = shown_url
        self._token = secrets.token_hex(16)
        self._stopping = threading.Event()
        self._lost = threading.Event()
        self._beater = threading.Thread(
            target=self._beat, name=f"tiers-lease-{environment}", daemon=True
        )

    @property
    def lost(self) -> bool:
        return self._lost.is_set()

    def check(self) -> None:
        """Raise :class:`OperationError` if the lease is no longer ours."""
        if not self.lost:
            return
        with database.transaction(self._engine, self._url) as connection:
            now_held = current(connection, self.environment)
        by = f" by {now_held.describe()}" if now_held else ""
        raise OperationError(
            f"lost the lock on {self.environment}: its lease ran out before a heartbeat "
            f"renewed it and it was taken over{by}; stop this deploy and check the state"
        )

    def attach(self, deployment_id: int) -> None:
        """Name the deployment this lock is held for, once it has been recorded."""
        self.deployment_id = deployment_id
        with database.transaction(self._engine, self._url) as connection:
            if not self._update(connection, deployment_id=deployment_id):
                self._lost.set()

    def acquire(self, wait: bool, on_wait: Callable[[LockInfo], None] | None) -> None:
        told = False
        while (held := self._attempt()) is not None:
            if not wait:
                raise LockHeld(self.environment, held.holder, held.since, held.deployment_id)
            if on_wait is not None and not told:
                on_wait(held)
                told = True
            time.sleep(POLL_SECONDS)
        self._beater.start()

    def release(self) -> None:
        self._stopping.set()
        if self._beater.is_alive():
            self._beater.join()
        with database.transaction(self._engine, self._url) as connection:
            connection.execute(sa.delete(locks).where(*self._ours()))

    def _attempt(self) -> LockInfo | None:
        """Take the lock (None) or say who holds it with a live lease."""
        while True:
            with database.transaction(self._engine, self._url) as connection:
                if self._insert(connection, database.now(connection)):
                    return None
            with database.transaction(self._engine, self._url) as connection:
                now = database.now(connection)
                row = _row(connection, self.environment)
                if row is None:
                    continue  # released between our two looks: try again
                held = LockInfo.from_row(row)
                dead = _dead_here(held.holder)
                if held.expires_at > now and not dead:
                    return held
                if self._take_over(connection, row.token, now, expired=not dead):
                    self.took_over = held
                    return None

    def _values(self, now: datetime) -> dict[str, Any]:
        expires = now + timedelta(seconds=self.lease_seconds)
        return {"heartbeat_at": now, "expires_at": expires}

    def _insert(self, connection: Connection, now: datetime) -> bool:
        values = {
            "environment": self.environment,
            "holder": self.holder,
            "token": self._token,
            "acquired_at": now,
            "deployment_id": self.deployment_id,
            **self._values(now),
        }
        key = [locks.c.environment]
        if connection.dialect.name == "postgresql":  # imported here: SQLite is the default
            from sqlalchemy.dialects.postgresql import insert as insert_pg

            absent: Any = insert_pg(locks).values(values).on_conflict_do_nothing(index_elements=key)
        else:
            from sqlalchemy.dialects.sqlite import insert

            absent = insert(locks).values(values).on_conflict_do_nothing(index_elements=key)
        # An INSERT's row count is kept only on request (psycopg would report -1).
        return connection.execute(absent.execution_options(preserve_rowcount=True)).rowcount == 1

    def _take_over(
        self, connection: Connection, token: str, now: datetime, *, expired: bool = True
    ) -> bool:
        # Only the acquisition we looked at, and only while it is still expired (or its
        # holder, on this machine, is dead): a heartbeat or another taker in between
        # leaves this nothing to update.
        still = (locks.c.expires_at <= now,) if expired else ()
        result = connection.execute(
            sa.update(locks)
            .where(locks.c.environment == self.environment, locks.c.token == token, *still)
            .values(
                holder=self.holder,
                token=self._token,
                acquired_at=now,
                deployment_id=self.deployment_id,
                **self._values(now),
            )
        )
        return result.rowcount == 1

    def _ours(self) -> tuple[sa.ColumnElement[bool], ...]:
        return (locks.c.environment == self.environment, locks.c.token == self._token)

    def _update(self, connection: Connection, **values: Any) -> bool:
        result = connection.execute(sa.update(locks).where(*self._ours()).values(**values))
        return result.rowcount == 1

    def _renew(self) -> bool:
        with database.transaction(self._engine, self._url) as connection:
            return self._update(connection, **self._values(database.now(connection)))

    def _beat(self) -> None:
        while not self._stopping.wait(self.lease_seconds / 3):
            try:
                renewed = self._renew()
            except OperationError:
                continue  # the database did not answer this time; the lease may still hold
            if not renewed:
                self._lost.set()
                return
