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
from typing import Any

from tiers.errors import OperationError, PlatformError, UsageError
from tiers.pipeline.deploy import RUN_ONLY, DbChoice, Pipeline, Run, Target, head_of
from tiers.pipeline.migrations import Migrations
from tiers.platforms.runtime import Release
from tiers.providers import databases
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
    what happens to the database (keep, downgrade or restore).

    The recorded release comes back with its own tiers.toml (so its own build and
    virtualenv), never a rebuild from today's file. The code switches first; the database
    changes after, under the old code, which runs on the newer schema, while the newer
    code never runs on the older one. A downgrade is snapshotted first and the snapshot
    restored if it fails.
    """
    pipeline.deployable(environment)
    with pipeline._lock(environment, wait) as lease:
        pipeline.prepare(pipeline.environment(environment))
        pipeline.repair(environment)
        current, target = _target(pipeline, environment, to)
        old = pipeline.at(_as_target(target), forced="rollback")
        new = pipeline.at(_as_target(current), forced="rollback")
        env = old.environment(environment)
        services = old.services(env)
        db_url = old.platforms.database_url(env)
        head = head_of(db_url)
        downgrade_to = target.migration_after
        if db == "downgrade":
            _check_downgrade(new, current, db_url, head, downgrade_to, force)
        if db == "restore":
            _check_restore(current, force)
        kept = {k: v for k, v in (target.manifest or {}).items() if k not in RUN_ONLY}
        manifest = {**kept, "undoes": current.id, "db": db}
        deployment = old.store.begin(
            environment, "rollback", target.version, target.commit, old.actor, manifest, head
        )
        lease.attach(deployment)
        old.report.line(
            f"{environment}: rollback {deployment} from {current.version} to {target.version}"
        )
        release = Release(target.version, target.commit or "")
        run = Run(deployment, env, release, Path(), {}, db_url, head, lease=lease)
        with old._ending(run, manifest):
            old._build(run, services)
            instances = old._start(run, services, manifest)
            with old._step(run, "switch"):
                replaced = {s: old.platforms.of(env, s).switch(instances[s]) for s in services}
            with old._step(run, "drain"):
                for instance in replaced.values():
                    if instance is not None:
                        new.drain(new.environment(environment), instance)
            old.store.finish(
                current.id, "rolled-back", error=f"rolled back by deployment {deployment}"
            )
            if db == "downgrade" and head != downgrade_to:
                _downgrade(new, run, current, manifest, downgrade_to or "base")
            if db == "restore":
                _restore_before(old, run, current)
            old._end(run, "succeeded", None, manifest)
    found = pipeline.store.get(deployment)
    assert found is not None
    return found


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
    new: Pipeline, run: Run, current: Deployment, manifest: dict[str, Any], to: str
) -> None:
    """Take the database down to ``to`` with the undone release's own downgrade, after the
    switch; snapshotted first, and restored from that snapshot if the downgrade fails."""
    assert run.db_url is not None
    source = new.state_dir / "releases" / (current.commit or "") / new._relative()
    release = Release(current.version, current.commit or "")
    dump = new.snapshot_path(run.env.name, run.deployment)
    dump.parent.mkdir(parents=True, exist_ok=True)
    with new._step(run, "snapshot") as note:
        snapshot = databases.snapshot(run.db_url, dump)
        manifest["snapshot"] = str(dump)
        note.text = f"migration head {snapshot.migration_head or 'none'}, before the downgrade"
    try:
        with new._step(run, "downgrade") as note:
            env = new.environment(run.env.name)
            for service in new.services(env):
                if command := new.config.services[service].downgrade_command:
                    platform = new.platforms.of(env, service)
                    artifact = platform.build(service, source)
                    target = {"TIERS_MIGRATION_TARGET": to}
                    platform.run(run.env.name, service, release, artifact, command, target)
            note.text = f"migration head {head_of(run.db_url) or 'none'}"
    except PlatformError as exc:
        with new._step(run, "restore") as note:
            databases.restore(snapshot, run.db_url)
            note.text = "database restored from the snapshot taken before the downgrade"
        new._end(run, "failed", str(exc), manifest)
        raise OperationError(
            f"{run.env.name}: rollback {run.deployment} switched to {run.release.version}, "
            f"but the downgrade to {to} failed, so the database was restored from the "
            f"snapshot taken just before it (migration head {snapshot.migration_head}); "
            f"{run.release.version} serves on that schema.\n{exc}"
        ) from None
