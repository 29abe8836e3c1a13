"""The state store: every deployment of every environment, and their deploy locks.

The pipeline records a deployment as it goes (``begin``, one ``step`` per step,
``finish`` with its end state) while it holds the environment's lock; ``history``,
``last`` and ``unfinished`` read it back for ``tiers history``, rollbacks and recovery.

>>> store = StateStore.open(None, Path("."))                      # doctest: +SKIP
>>> with store.lock("staging", default_holder()) as lease:         # doctest: +SKIP
...     run = store.begin("staging", "deploy", "2026.1126.010203", commit, actor)
...     lease.attach(run)
...     with store.step(run, "migrate"):
...         migrate()
...     store.finish(run, "succeeded", migration_after="0042")
>>> store.last("staging").version                                  # doctest: +SKIP
'2026.1126.010203'
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from tiers.redaction import clean
from tiers.state import database
from tiers.state.lock import Lease, LockInfo, current
from tiers.state.records import KINDS, OUTCOMES, STATES, Deployment, Kind, Outcome, State, Step
from tiers.state.schema import deployments, steps


@dataclass
class RunningStep:
    """The step a ``with store.step(...)`` block runs; set ``detail`` to record a note."""

    id: int
    name: str
    detail: str | None = None


class StateStore:
    """Deployments and locks in one database; make one with :meth:`open`."""

    def __init__(self, engine: Engine, shown_url: str) -> None:
        self.engine = engine
        self.url = shown_url  # password hidden: fit for messages

    @classmethod
    def open(cls, url: str | None, project_dir: Path) -> StateStore:
        """SQLite at ``project_dir/.tiers/state.db`` without a URL, else the URL's database."""
        engine = database.connect(url, project_dir)
        shown = database.redact(url if url is not None else engine.url)
        return cls(engine, shown)

    @classmethod
    def reading(cls, url: str | None, project_dir: Path) -> StateStore:
        """Like :meth:`open`, for commands that only read: where no deployment was ever
        recorded (no URL, no ``.tiers/state.db``), an empty store in memory, so reading
        never creates the state directory as a side effect."""
        if url is None and not (project_dir / database.DEFAULT_PATH).exists():
            return cls.open("sqlite://", project_dir)
        return cls.open(url, project_dir)

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _transaction(self) -> contextlib.AbstractContextManager[Connection]:
        return database.transaction(self.engine, self.url)

    # -- recording -----------------------------------------------------------------------

    def begin(
        self,
        environment: str,
        kind: Kind,
        version: str,
        commit: str | None,
        actor: str,
        manifest: dict[str, Any] | None = None,
        migration_before: str | None = None,
    ) -> int:
        """Record a deployment as running; returns its id."""
        _check(kind, KINDS, "kind")
        with self._transaction() as connection:
            result = connection.execute(
                deployments.insert().values(
                    environment=environment,
                    kind=kind,
                    version=version,
                    commit=commit,
                    actor=actor,
                    started_at=database.now(connection),
                    state="running",
                    migration_before=migration_before,
                    manifest=manifest or {},
                )
            )
            key = result.inserted_primary_key
            assert key is not None
            return int(key[0])

    @contextlib.contextmanager
    def step(self, deployment_id: int, name: str) -> Iterator[RunningStep]:
        """Record the block as a step: ok when it ends, failed (and re-raised) if it raises."""
        with self._transaction() as connection:
            result = connection.execute(
                steps.insert().values(
                    deployment_id=deployment_id,
                    name=name,
                    started_at=database.now(connection),
                    outcome="running",
                )
            )
            key = result.inserted_primary_key
        assert key is not None
        running = RunningStep(int(key[0]), name)
        started = time.perf_counter()
        try:
            yield running
        except BaseException as exc:
            detail = str(exc) or type(exc).__name__
            _noting(exc, lambda: self._end_step(running.id, "failed", started, detail))
            raise
        self._end_step(running.id, "ok", started, running.detail)

    def _end_step(self, step_id: int, outcome: Outcome, started: float, detail: str | None) -> None:
        duration_ms = (time.perf_counter() - started) * 1000
        with self._transaction() as connection:
            connection.execute(
                steps.update()
                .where(steps.c.id == step_id)
                .values(outcome=outcome, duration_ms=duration_ms, detail=_clean(detail))
            )

    def record_step(
        self,
        deployment_id: int,
        name: str,
        outcome: Outcome,
        duration_ms: float,
        detail: str | None = None,
        *,
        started_at: datetime | None = None,
    ) -> None:
        """Record a step measured elsewhere; by default it ended just now."""
        _check(outcome, OUTCOMES, "outcome")
        with self._transaction() as connection:
            if started_at is None:
                started_at = database.now(connection) - timedelta(milliseconds=duration_ms)
            connection.execute(
                steps.insert().values(
                    deployment_id=deployment_id,
                    name=name,
                    started_at=started_at,
                    duration_ms=duration_ms,
                    outcome=outcome,
                    detail=detail,
                )
            )

    def finish(
        self,
        deployment_id: int,
        state: State,
        *,
        migration_after: str | None = None,
        error: str | None = None,
        manifest: dict[str, Any] | None = None,
    ) -> None:
        """Record the deployment's end state (anything but ``running``)."""
        _check(state, STATES[1:], "end state")
        changes: dict[str, Any] = {"state": state, "error": _clean(error)}
        if migration_after is not None:
            changes["migration_after"] = migration_after
        if manifest is not None:
            changes["manifest"] = manifest
        with self._transaction() as connection:
            changes["finished_at"] = database.now(connection)
            result = connection.execute(
                deployments.update().where(deployments.c.id == deployment_id).values(changes)
            )
            if result.rowcount != 1:
                raise LookupError(f"no deployment {deployment_id} in {self.url}")

    def mark_interrupted(self, deployment_id: int, note: str) -> bool:
        """End a deployment found still running whose process is gone; False if it ended.

        Its steps still marked running are recorded as failed, with ``note`` as detail.
        """
        with self._transaction() as connection:
            result = connection.execute(
                deployments.update()
                .where(deployments.c.id == deployment_id, deployments.c.state == "running")
                .values(state="interrupted", error=note, finished_at=database.now(connection))
            )
            if result.rowcount != 1:
                return False
            connection.execute(
                steps.update()
                .where(steps.c.deployment_id == deployment_id, steps.c.outcome == "running")
                .values(outcome="failed", detail=note)
            )
            return True

    # -- reading -------------------------------------------------------------------------

    def get(self, deployment_id: int) -> Deployment | None:
        found = self._select(deployments.c.id == deployment_id, limit=1)
        return found[0] if found else None

    def history(self, environment: str, limit: int = 20) -> list[Deployment]:
        """The environment's deployments, newest first."""
        return self._select(deployments.c.environment == environment, limit=limit)

    def last(
        self, environment: str, state: State | None = "succeeded", kind: Kind | None = None
    ) -> Deployment | None:
        """The newest deployment of the environment in ``state`` (any if None), of ``kind``."""
        conditions = [deployments.c.environment == environment]
        if state is not None:
            conditions.append(deployments.c.state == state)
        if kind is not None:
            conditions.append(deployments.c.kind == kind)
        found = self._select(*conditions, limit=1)
        return found[0] if found else None

    def unfinished(self, environment: str) -> list[Deployment]:
        """The environment's deployments still marked running, newest first."""
        running = deployments.c.state == "running"
        return self._select(deployments.c.environment == environment, running, limit=None)

    def _select(self, *conditions: sa.ColumnElement[bool], limit: int | None) -> list[Deployment]:
        query = sa.select(deployments).where(*conditions).order_by(deployments.c.id.desc())
        with self._transaction() as connection:
            rows = connection.execute(query.limit(limit)).all()
            steps_by_id = _steps(connection, [row.id for row in rows])
        return [_deployment(row, steps_by_id.get(row.id, [])) for row in rows]

    # -- locking -------------------------------------------------------------------------

    @contextlib.contextmanager
    def lock(
        self,
        environment: str,
        holder: str,
        *,
        wait: bool = False,
        lease_seconds: float = 30,
        deployment_id: int | None = None,
        on_wait: Callable[[LockInfo], None] | None = None,
    ) -> Iterator[Lease]:
        """Hold the environment's deploy lock for the block (see :mod:`tiers.state.lock`).

        Raises :class:`~tiers.errors.LockHeld` if another holder's lease is alive, unless
        ``wait``: then it polls until the lock is free, calling ``on_wait`` once first.
        """
        lease = Lease(self.engine, self.url, environment, holder, lease_seconds, deployment_id)
        lease.acquire(wait, on_wait)
        try:
            yield lease
        finally:
            lease.release()

    def locked(self, environment: str) -> LockInfo | None:
        """Who holds the environment's lock; ``expires_at`` in the past means a dead holder."""
        with self._transaction() as connection:
            return current(connection, environment)


def _check(value: str, allowed: tuple[str, ...], what: str) -> None:
    if value not in allowed:
        raise ValueError(f"{what} {value!r} is not one of {', '.join(allowed)}")


def _noting(exc: BaseException, record: Callable[[], None]) -> None:
    # The block's own error matters more than a failure to record it.
    try:
        record()
    except Exception as failure:
        exc.add_note(f"(and recording the failed step failed too: {failure})")


def _steps(connection: Connection, ids: list[int]) -> dict[int, list[Step]]:
    found: dict[int, list[Step]] = {}
    if not ids:
        return found
    query = sa.select(steps).where(steps.c.deployment_id.in_(ids)).order_by(steps.c.id)
    for row in connection.execute(query):
        step = Step(row.name, row.started_at, row.duration_ms, row.outcome, row.detail)
        found.setdefault(row.deployment_id, []).append(step)
    return found


def _deployment(row: Any, recorded: list[Step]) -> Deployment:
    # the columns are named as the record's fields; _mapping is SQLAlchemy's public row API
    fields = dict(row._mapping)  # noqa: SLF001
    fields["manifest"] = dict(fields["manifest"] or {})
    return Deployment(**fields, steps=recorded)


def _clean(text: str | None) -> str | None:
    """A secret value this process was given never goes into a record."""
    return clean(text) if text else text
