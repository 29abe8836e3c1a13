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

from pathlib import Path

from tiers.errors import OperationError, UsageError
from tiers.pipeline import databases
from tiers.pipeline.deploy import RUN_ONLY, DbChoice, Pipeline, Run, head_of
from tiers.pipeline.migrations import Migrations
from tiers.platforms.runtime import Release
from tiers.state import Deployment

__all__ = ["rollback"]


def rollback(
    pipeline: Pipeline,
    environment: str,
    to: str | None = None,
    db: DbChoice = "keep",
    force: bool = False,
    wait: bool = False,
) -> Deployment:
    """Roll ``environment`` back to ``to`` (default: the previous release); ``db`` says
    what happens to the database (keep, downgrade or restore)."""
    env = pipeline.deployable(environment)
    services = pipeline.services(env)
    with pipeline._lock(environment, wait) as lease:
        pipeline.platform.prepare(environment)
        pipeline.repair(environment)
        current, target = _target(pipeline, environment, to)
        db_url = pipeline.platform.database_url(env)
        head = head_of(db_url)
        downgrade_to = target.migration_after
        if db == "downgrade":
            _check_downgrade(pipeline, current, db_url, head, downgrade_to, force)
        if db == "restore":
            snapshot = (current.manifest or {}).get("snapshot")
            if not snapshot or not Path(snapshot).exists():
                raise OperationError(
                    f"deployment {current.id} kept no snapshot to restore; "
                    "use --db keep or --db downgrade"
                )
            if not force:
                when = f"{current.started_at:%Y-%m-%d %H:%M:%S} UTC"
                raise OperationError(
                    f"restoring the snapshot taken before deployment {current.id} ({when}) "
                    "discards every write to the database since; pass --force to do it, "
                    "or use --db downgrade"
                )
        kept = {k: v for k, v in (target.manifest or {}).items() if k not in RUN_ONLY}
        manifest = {**kept, "undoes": current.id, "db": db}
        deployment = pipeline.store.begin(
            environment, "rollback", target.version, target.commit, pipeline.actor, manifest, head
        )
        lease.attach(deployment)
        pipeline.report.line(
            f"{environment}: rollback {deployment} from {current.version} to {target.version}"
        )
        release = Release(target.version, target.commit or "")
        run = Run(deployment, env, release, Path(), {}, db_url, head, lease=lease)
        with pipeline._ending(run, manifest):
            pipeline._build(run, services)
            if db == "downgrade" and head != downgrade_to:
                _downgrade(pipeline, run, current, services, downgrade_to or "base")
            if db == "restore":
                _restore_before(pipeline, run, current)
            new = pipeline._start(run, services, manifest)
            with pipeline._step(run, "switch"):
                old = {service: pipeline.releases.switch(new[service]) for service in services}
            with pipeline._step(run, "drain"):
                for instance in old.values():
                    if instance is not None:
                        timeout = pipeline.config.services[instance.service].drain_timeout
                        pipeline.releases.stop(instance, drain=timeout, switched=True)
            pipeline._end(run, "succeeded", None, manifest)
        pipeline.store.finish(
            current.id, "rolled-back", error=f"rolled back by deployment {deployment}"
        )
    found = pipeline.store.get(deployment)
    assert found is not None
    return found


def _restore_before(pipeline: Pipeline, run: Run, current: Deployment) -> None:
    with pipeline._step(run, "restore") as note:
        assert run.db_url is not None
        path = Path((current.manifest or {})["snapshot"])
        databases.restore(databases.Snapshot.load(path, run.db_url), run.db_url)
        note.text = f"database as before deployment {current.id}"


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
    source = pipeline.state_dir / "releases" / (current.commit or "") / pipeline._relative()
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


def _downgrade(
    pipeline: Pipeline, run: Run, current: Deployment, services: list[str], to: str
) -> None:
    source = pipeline.state_dir / "releases" / (current.commit or "") / pipeline._relative()
    release = Release(current.version, current.commit or "")
    with pipeline._step(run, "downgrade") as note:
        for service in services:
            if pipeline.config.services[service].downgrade_command:
                venv, _ = pipeline.releases.build(service, source)
                pipeline.releases.downgrade(run.env.name, service, release, source, venv, to)
        note.text = f"migration head {head_of(run.db_url) or 'none'}"
