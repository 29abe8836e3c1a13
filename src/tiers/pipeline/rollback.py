"""``tiers rollback``: an earlier release serving again, without a rebuild.

The target is the newest successful deployment before the current one with another
commit (or ``--to`` a version, commit or deployment id that ran successfully). Its
release directory and virtualenv are still there, so it starts in seconds beside the
current version, is health-checked, switched to and the current one drained. The
database is kept (``keep``), taken down to the target's migration head by the service's
``downgrade_command`` (``downgrade``: refused, unless forced, when a revision's
``DROPS_COLUMNS`` or ``DROPS_TABLES`` names something that holds data), or restored from
the snapshot taken before the deploy being undone (``restore``: always asks for
``--force``, since every write since is lost).

>>> rollback(pipeline, "production", db="downgrade")               # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tiers.config.model import redact
from tiers.errors import OperationError, UsageError
from tiers.pipeline import recovery, steps
from tiers.pipeline.deploy import RUN_ONLY, DbChoice, Pipeline, Target
from tiers.pipeline.migrations import Migrations
from tiers.pipeline.plan import Plan, Step
from tiers.pipeline.run import Run, begin, ending, execute, finish, head_of, lock
from tiers.platforms.base import Release
from tiers.providers import databases
from tiers.state import Deployment, Lease

__all__ = ["rollback"]


def rollback(
    pipeline: Pipeline,
    environment: str,
    to: str | None = None,
    db: DbChoice = "keep",
    force: bool = False,
    wait: bool = False,
    dry_run: bool = False,
) -> Deployment | list[str]:
    """Roll ``environment`` back to ``to`` (default: the previous release); ``db`` says
    what happens to the database (keep, downgrade or restore). With ``dry_run``, the
    plan's lines instead, after the same refusals, with nothing changed.

    The recorded release comes back with its own tiers.toml (so its own build and
    virtualenv), never a rebuild from today's file. The code switches first; the database
    changes after, under the old code, which runs on the newer schema, while the newer
    code never runs on the older one. A downgrade is snapshotted first and the snapshot
    restored if it fails.
    """
    pipeline.deployable(environment)
    if dry_run:
        return _rolled(pipeline, environment, to, db, force, None).lines()
    with lock(pipeline, environment, wait) as lease:
        pipeline.prepare(pipeline.environment(environment))
        recovery.repair(pipeline, environment)
        plan = _rolled(pipeline, environment, to, db, force, lease)
        run = plan.run
        older, current = plan.older, plan.current
        older.report.line(
            f"{environment}: rollback {run.deployment} from {current.version} "
            f"to {run.release.version}"
        )
        with ending(older, run):
            # today's values for what the older release declares: never a rotated one back
            run.secrets = older.secrets(run.env, older.services(run.env))
            execute(older, run, plan.serve)
            older.store.finish(
                current.id, "rolled-back", error=f"rolled back by deployment {run.deployment}"
            )
            if plan.database is not None:
                execute(plan.newer, run, plan.database)
            finish(older, run, "succeeded", None)
    found = pipeline.store.get(run.deployment)
    assert found is not None
    return found


@dataclass
class _Rollback:
    """A rollback, planned: the code back (``serve``), then the database (``database``)."""

    older: Pipeline
    newer: Pipeline
    current: Deployment
    run: Run
    serve: Plan
    database: Plan | None

    def lines(self) -> list[str]:
        return self.serve.lines() + (self.database.lines() if self.database else [])


def _rolled(
    pipeline: Pipeline,
    environment: str,
    to: str | None,
    db: DbChoice,
    force: bool,
    lease: Lease | None,
) -> _Rollback:
    """Choose the release, refuse what ``db`` would lose, and plan; recorded only with a
    ``lease`` (a dry run records nothing)."""
    current, target = _target(pipeline, environment, to)
    older = pipeline.at(_as_target(target), forced="rollback")
    newer = pipeline.at(_as_target(current), forced="rollback")
    env = older.environment(environment)
    services = older.services(env)
    db_url = older.platforms.database_url(env)
    head = head_of(db_url)
    downgrade_to = target.migration_after
    if db == "downgrade":
        _check_downgrade(newer, current, db_url, head, downgrade_to, force)
    if db == "restore":
        _check_restore(current, force)
    kept = {k: v for k, v in (target.manifest or {}).items() if k not in RUN_ONLY}
    manifest = {**kept, "undoes": current.id, "db": db}
    if lease is not None:
        run = begin(older, env, "rollback", _as_target(target), manifest, lease)
    else:
        run = Run(0, env, Release(target.version, target.commit or ""), db_url, head, manifest)
    serve = steps.rollback_plan(older, run, current, services, db)
    database = None
    if db == "downgrade" and head != downgrade_to:
        database = steps.downgrade_plan(newer, run, current, downgrade_to or "base", services)
    if db == "restore":
        database = _restore_plan(older, run, current)
    return _Rollback(older, newer, current, run, serve, database)


def _as_target(deployment: Deployment) -> Target:
    version = deployment.version
    return Target((deployment.manifest or {}).get("ref", version), deployment.commit or "", version)


def _check_restore(current: Deployment, force: bool) -> None:
    snapshot = (current.manifest or {}).get("snapshot")
    if not snapshot or not Path(snapshot).exists():
        raise OperationError(
            f"deployment {current.id} kept no snapshot to restore; use --db keep or --db downgrade"
        )
    if not force:
        when = f"{current.started_at:%Y-%m-%d %H:%M:%S} UTC"
        raise OperationError(
            f"restoring the snapshot taken before deployment {current.id} ({when}) "
            "discards every write to the database since; pass --force to do it, "
            "or use --db downgrade"
        )


def _restore_plan(pipeline: Pipeline, run: Run, current: Deployment) -> Plan:
    path = Path((current.manifest or {})["snapshot"])

    def act() -> str:
        assert run.db_url is not None
        databases.restore(databases.Snapshot.load(path, run.db_url), run.db_url)
        return f"database as before deployment {current.id}"

    said = f"{redact(run.db_url or '')} from {path.name}, as before deployment {current.id}"
    return Plan(f"then the database of {run.env.name}", [Step("restore", said, act)])


def _target(pipeline: Pipeline, environment: str, to: str | None) -> tuple[Deployment, Deployment]:
    done = [d for d in pipeline.store.history(environment, limit=200) if d.state == "succeeded"]
    if not done:
        raise UsageError(f"{environment} has no successful deployment to roll back from")
    current = done[0]
    earlier = [d for d in done[1:] if d.commit != current.commit]
    if to is not None:
        earlier = [d for d in done[1:] if to in (d.version, d.commit, str(d.id))]
        if not earlier:
            versions = ", ".join(dict.fromkeys(d.version for d in done[1:])) or "none"
            raise UsageError(
                f"{environment} never ran {to!r} successfully; earlier versions: {versions}"
            )
    if not earlier:
        raise UsageError(f"{environment} has no earlier successful release than {current.version}")
    return current, earlier[0]


def _check_downgrade(
    pipeline: Pipeline,
    current: Deployment,
    db_url: str | None,
    head: str | None,
    to: str | None,
    force: bool,
) -> None:
    if db_url is None or head == to:
        return
    if not any(pipeline.config.services[s].downgrade_command for s in pipeline.config.services):
        raise OperationError(
            f"no service declares a downgrade_command to take the database from {head} "
            f"to {to}; declare one, or use --db keep or --db restore"
        )
    source = pipeline.state_dir / "releases" / (current.commit or "") / pipeline.relative()
    globs = [g for s in pipeline.config.services.values() for g in s.migrations]
    revisions = Migrations.read(source, globs).between(to, head)
    if not revisions:
        raise OperationError(
            f"cannot find the migrations from {head} down to {to} in release "
            f"{current.version}; use --db keep or --db restore"
        )
    losses = []
    for revision in revisions:
        for column in revision.drops_columns:
            table, _, name = column.partition(".")
            if rows := databases.populated(db_url, table, name):
                losses.append(f"{column} ({rows} rows with values, revision {revision.id})")
        for table in revision.drops_tables:
            if rows := databases.populated(db_url, table):
                losses.append(f"table {table} ({rows} rows, revision {revision.id})")
    if losses and not force:
        raise OperationError(
            f"downgrading to {to} would drop {'; '.join(losses)}; "
            "pass --force to lose them, or use --db keep"
        )
