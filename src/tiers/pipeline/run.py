"""Running a plan: each step shown, recorded and checked against the lock, and the record
ended however the run ends.

A run holds the environment's lock from start to end. Before each step the lease is
checked (never act on an environment whose lock was taken over); each step is shown by
the reporter and recorded with its duration and what it noted; a step that fails hands
its error to its own failure handler (restore the database, stop what it started), and
any other end — an exception, Ctrl-C, SIGTERM — ends the record as failed or interrupted
and puts traffic back on what the platforms say is live.

>>> with lock(pipeline, "staging", wait=False) as lease:           # doctest: +SKIP
...     run = begin(pipeline, env, "deploy", target, manifest, lease)
...     with ending(pipeline, run):
...         execute(pipeline, run, plan)
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tiers.config import Environment
from tiers.errors import OperationError, TiersError
from tiers.pipeline.migrations import Migrations
from tiers.pipeline.plan import Plan
from tiers.pipeline.report import StepNote
from tiers.platforms.base import Artifact, Instance, Release
from tiers.providers import databases
from tiers.state import Kind, Lease, default_holder

if TYPE_CHECKING:
    from tiers.pipeline.deploy import Pipeline, Target

__all__ = ["LEASE_SECONDS", "Run", "begin", "ending", "execute", "finish", "head_of", "lock"]

LEASE_SECONDS = 30.0


@dataclass
class Run:
    """One deploy or rollback in progress: its record, and what its steps made."""

    deployment: int
    env: Environment
    release: Release
    db_url: str | None
    head_before: str | None
    manifest: dict[str, Any]
    lease: Lease | None = None
    source: Path = Path()
    artifacts: dict[str, Artifact] = field(default_factory=dict)
    instances: dict[str, Instance] = field(default_factory=dict)
    """The new version's instances, once started."""
    replaced: dict[str, Instance] = field(default_factory=dict)
    """What served before the switch, to drain."""
    snapshot: databases.Snapshot | None = None
    secrets: dict[str, dict[str, str]] = field(default_factory=dict, repr=False)
    """Each service's secrets (variable → value), read before the run began; in memory."""


@contextlib.contextmanager
def lock(pipeline: Pipeline, environment: str, wait: bool) -> Iterator[Lease]:
    """The environment's deploy lock, held for the block; a lease left by a dead holder
    is taken over and said so."""

    def waiting(info: Any) -> None:
        pipeline.report.line(f"{environment}: waiting for {info.describe()}")

    with pipeline.store.lock(
        environment, default_holder(), wait=wait, lease_seconds=LEASE_SECONDS, on_wait=waiting
    ) as lease:
        if lease.took_over is not None:
            pipeline.report.line(
                f"{environment}: took over the lock left by {lease.took_over.describe()}"
            )
        yield lease


def begin(
    pipeline: Pipeline,
    env: Environment,
    kind: Kind,
    target: Target,
    manifest: dict[str, Any],
    lease: Lease,
) -> Run:
    """Record a new deployment of ``target`` and attach it to the lease."""
    db_url = pipeline.platforms.database_url(env)
    head = head_of(db_url)
    deployment = pipeline.store.begin(
        env.name, kind, target.version, target.commit, pipeline.actor, manifest, head
    )
    lease.attach(deployment)
    release = Release(target.version, target.commit)
    return Run(deployment, env, release, db_url, head, manifest, lease)


def execute(pipeline: Pipeline, run: Run, plan: Plan) -> None:
    """Run the plan's steps in order, each recorded; a failing step's handler decides
    what is put back and what error the user sees."""
    for step in plan.steps:
        try:
            with recorded(pipeline, run, step.name) as note:
                note.text = step.act() or ""
        except Exception as exc:
            if step.fails is None:
                raise
            raise step.fails(exc) from None


@contextlib.contextmanager
def recorded(pipeline: Pipeline, run: Run, name: str) -> Iterator[StepNote]:
    """A step shown by the reporter and recorded in the store, with what it noted."""
    if run.lease is not None:
        run.lease.check()  # never act on an environment whose lock was taken over
    with (
        pipeline.store.step(run.deployment, name) as row,
        pipeline.report.step(run.env.name, name) as note,
    ):
        try:
            yield note
        finally:
            row.detail = note.text or None


@contextlib.contextmanager
def ending(pipeline: Pipeline, run: Run) -> Iterator[None]:
    """End the record however the run ends; what served before keeps serving."""
    try:
        yield
    except KeyboardInterrupt:
        abandon(pipeline, run, "interrupted", "stopped by a signal (Ctrl-C or SIGTERM)")
        raise
    except Exception as exc:
        abandon(pipeline, run, "failed", str(exc) or type(exc).__name__)
        if isinstance(exc, TiersError):
            raise
        raise OperationError(
            f"{run.env.name}: deployment {run.deployment} failed: {exc!r}"
        ) from exc


def abandon(pipeline: Pipeline, run: Run, state: Any, why: str) -> None:
    """End a run that did not finish: the database back when nothing switched, the record
    ended, and traffic on what is live."""
    found = pipeline.store.get(run.deployment)
    if found is not None and found.state == "running":
        live = pipeline.platforms.live(run.env).values()
        if not any(i.tag == str(run.deployment) for i in live):
            restore(pipeline, run, "it ended", compatible_ok=True)  # nothing switched
        finish(pipeline, run, state, why)
    settle(pipeline, run.env)


def settle(pipeline: Pipeline, env: Environment) -> None:
    """Point each service at what is live, then stop every other instance."""
    for platform in pipeline.platforms.serving(env):
        for name in platform.settle(env.name):
            pipeline.report.line(f"{env.name}: stopped {name}, not the live release")


def finish(pipeline: Pipeline, run: Run, state: Any, error: str | None) -> None:
    """End the record with ``state``, noting the database's migration head now."""
    run.manifest["migration_after"] = head_of(run.db_url)
    pipeline.store.finish(
        run.deployment,
        state,
        migration_after=run.manifest["migration_after"],
        error=error,
        manifest=run.manifest,
    )


def restore(pipeline: Pipeline, run: Run, after: str, compatible_ok: bool = False) -> str:
    """Put the database back as it was before this run; what happened, in words."""
    if run.snapshot is None or run.db_url is None:
        return "the database was not snapshotted"
    if databases.fingerprint(run.db_url) == run.snapshot.fingerprint:
        return "the database schema is unchanged"
    if compatible_ok:
        globs = [g for s in pipeline.config.services.values() for g in s.migrations]
        applied = Migrations.read(run.source, globs).between(run.head_before, head_of(run.db_url))
        if applied and all(r.compatible for r in applied):
            return "the database keeps its compatible migrations"
    with recorded(pipeline, run, "restore") as note:
        databases.restore(run.snapshot, run.db_url)
        note.text = f"database restored from the snapshot taken before {after}"
    return "the database was restored from its snapshot"


def failed(pipeline: Pipeline, run: Run, why: str, db: str, exc: Exception) -> OperationError:
    """The error a user sees for a run that failed before its switch."""
    live = pipeline.platforms.live(run.env)
    serving = ", ".join(f"{s} {i.version}" for s, i in live.items()) or "nothing yet"
    return OperationError(
        f"{run.env.name}: deployment {run.deployment} failed: {why}; nothing was "
        f"switched ({serving} still serving) and {db}.\n{exc}"
    )


def head_of(url: str | None) -> str | None:
    return databases.migration_head(url) if url else None
