"""The steps of a deploy and of a rollback, as plans: what each says, does and undoes.

A deploy: build → secrets → snapshot → release → start → health → switch → drain.
Before the switch, any failure leaves the old version serving: the new one is stopped
and the database restored from the snapshot when the failed step changed its schema
(or, after a failed health check, unless every migration applied says
``COMPATIBLE = True``).
Every service is started and healthy before any is switched, APIs before frontends, so
a frontend never goes live in front of a backend that is not.

A rollback: build (reused) → secrets → start → health → switch → drain, then the
database as ``--db`` says: a downgrade runs under the old code, snapshotted first. The
secrets step hands each platform the tier's secrets as the store holds them now (a
rollback too: a rolled-back release never brings back a rotated value) and records
which changed since the last deployment, by name and fingerprint, never by value.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tiers.config.model import redact
from tiers.errors import OperationError
from tiers.git import Repo
from tiers.pipeline import delivery
from tiers.pipeline.plan import Plan, Step
from tiers.pipeline.run import Run, failed, finish, head_of, recorded, restore
from tiers.platforms.base import Release
from tiers.providers import databases
from tiers.state import Deployment

if TYPE_CHECKING:
    from tiers.pipeline.deploy import Pipeline, Target

__all__ = ["deploy_plan", "downgrade_plan", "rollback_plan"]


def deploy_plan(pipeline: Pipeline, run: Run, target: Target, services: list[str]) -> Plan:
    """Ship ``target``'s ``services`` to ``run``'s environment."""
    title = (
        f"deploy {run.env.name}: {target.ref} → {target.commit[:12]} as version {target.version}"
    )
    plan = Plan(title, [_build(pipeline, run, services), _secrets(pipeline, run, services)])
    if run.db_url:
        plan.steps.append(_snapshot(pipeline, run))
    plan.steps.append(_release(pipeline, run, services))
    plan.steps += _serve(pipeline, run, services)
    return plan


def rollback_plan(
    pipeline: Pipeline, run: Run, current: Deployment, services: list[str], db: str
) -> Plan:
    """Serve ``run``'s release again in place of ``current``."""
    title = (
        f"rollback {run.env.name}: {current.version} → {run.release.version} "
        f"({run.release.commit[:12]}), --db {db}"
    )
    return Plan(
        title,
        [
            _build(pipeline, run, services),
            _secrets(pipeline, run, services, rollback=True),
            *_serve(pipeline, run, services),
        ],
    )


def downgrade_plan(
    newer: Pipeline, run: Run, current: Deployment, to: str, services: list[str]
) -> Plan:
    """After a rollback's switch: the database down to ``to`` with ``current``'s own
    ``downgrade_command``, snapshotted first and restored from it if the downgrade fails."""
    source = newer.state_dir / "releases" / (current.commit or "") / newer.relative()
    env = newer.environment(run.env.name)
    commands = {
        s: c for s in services if (c := newer.config.services[s].downgrade_command) is not None
    }

    def snapshot() -> str:
        return f"{take_snapshot(newer, run)}, before the downgrade"

    def downgrade() -> str:
        for service, command in commands.items():
            platform = newer.platforms.of(env, service)
            artifact = platform.build(service, source)
            release = Release(current.version, current.commit or "")
            target = {"TIERS_MIGRATION_TARGET": to}
            secrets = newer.secrets(env, [service])[service]  # as current declares, today's
            platform.deliver(run.env.name, service, secrets)
            platform.run(run.env.name, service, release, artifact, command, target)
        return f"migration head {head_of(run.db_url) or 'none'}"

    def undone(exc: Exception) -> Exception:
        assert run.snapshot is not None and run.db_url is not None
        with recorded(newer, run, "restore") as note:
            databases.restore(run.snapshot, run.db_url)
            note.text = "database restored from the snapshot taken before the downgrade"
        finish(newer, run, "failed", str(exc))
        return OperationError(
            f"{run.env.name}: rollback {run.deployment} switched to {run.release.version}, "
            f"but the downgrade to {to} failed, so the database was restored from the "
            f"snapshot taken just before it (migration head {run.snapshot.migration_head}); "
            f"{run.release.version} serves on that schema.\n{exc}"
        )

    said = "; ".join(f"{s}: {c} (TIERS_MIGRATION_TARGET={to})" for s, c in commands.items())
    return Plan(
        f"then the database of {run.env.name} down to {to}",
        [
            Step("snapshot", redact(run.db_url or ""), snapshot),
            Step("downgrade", said or "no downgrade_command", downgrade, undone),
        ],
    )


def _said(pipeline: Pipeline, run: Run, services: list[str], step: str) -> list[str]:
    """What each service's platform says it does in ``step``, as ``service: words``."""
    found = []
    for service in services:
        text = pipeline.platforms.of(run.env, service).describe(run.env.name, service).get(step)
        if text:
            found.append(text if step == "switch" else f"{service}: {text}")
    return found


def _build(pipeline: Pipeline, run: Run, services: list[str]) -> Step:
    short = run.release.commit[:12]

    def act() -> str:
        repo = Repo.find(pipeline.project_dir)
        exported = repo.export(
            run.release.commit, pipeline.state_dir / "releases" / run.release.commit
        )
        run.source = exported / pipeline.relative()
        notes = []
        for service in services:
            artifact = pipeline.platforms.of(run.env, service).build(service, run.source)
            run.artifacts[service] = artifact
            notes.append(f"{service} {artifact.note}")
        return "; ".join(notes)

    built = "; ".join(_said(pipeline, run, services, "build")) or "nothing to build"
    return Step("build", f"export {short} to .tiers/releases/; {built}", act)


def _secrets(pipeline: Pipeline, run: Run, services: list[str], rollback: bool = False) -> Step:
    wanted = delivery.declared(pipeline.config, run.env, services)
    names = delivery.names(wanted)
    kept = " (today's values, not those it ran with)" if rollback else ""

    def act() -> str:
        for service in services:
            values = run.secrets.get(service, {})
            pipeline.platforms.of(run.env, service).deliver(run.env.name, service, values)
        if not names:
            return "none declared"
        now = delivery.fingerprints(pipeline.project_dir, run.env.name, wanted)
        run.manifest["secrets"] = now
        last = pipeline.store.last(run.env.name)
        before = (last.manifest or {}).get("secrets") if last is not None else None
        changed = delivery.changed(before, now)
        if before is None:  # the first record of them
            return ", ".join(f"{n} {now[n]}" for n in names) + kept
        if changed:
            said = ", ".join(f"{n} {now.get(n) or 'removed'}" for n in changed)
            return f"secrets changed: {said}{kept}"
        return f"{', '.join(names)} unchanged{kept}"

    said = (
        f"{', '.join(names)} from secrets/{run.env.name}.yaml{kept}" if names else "none declared"
    )
    return Step("secrets", said, act)


def take_snapshot(pipeline: Pipeline, run: Run) -> str:
    """Snapshot the run's database beside its record; its migration head, in words."""
    assert run.db_url is not None
    dump = pipeline.snapshot_path(run.env.name, run.deployment)
    dump.parent.mkdir(parents=True, exist_ok=True)
    run.snapshot = databases.snapshot(run.db_url, dump)
    run.manifest["snapshot"] = str(dump)
    return f"migration head {run.snapshot.migration_head or 'none'}"


def _snapshot(pipeline: Pipeline, run: Run) -> Step:
    return Step("snapshot", redact(run.db_url or ""), lambda: take_snapshot(pipeline, run))


def _release(pipeline: Pipeline, run: Run, services: list[str]) -> Step:
    def act() -> str:
        for service in services:
            if command := pipeline.config.services[service].release_command:
                platform = pipeline.platforms.of(run.env, service)
                platform.run(run.env.name, service, run.release, run.artifacts[service], command)
        return f"migration head {head_of(run.db_url) or 'none'}"

    def undone(exc: Exception) -> Exception:
        db = restore(pipeline, run, "release")
        finish(pipeline, run, "failed", str(exc))
        return failed(pipeline, run, "its release command failed", db, exc)

    said = "; ".join(_said(pipeline, run, services, "release")) or "no release_command"
    return Step("release", said, act, undone)


def _serve(pipeline: Pipeline, run: Run, services: list[str]) -> list[Step]:
    """start → health → switch → drain."""

    def start() -> None:
        for service in services:
            run.instances[service] = pipeline.platforms.of(run.env, service).start(
                run.env.name, service, run.release, run.artifacts[service], str(run.deployment)
            )

    def health() -> str:
        for service, instance in run.instances.items():
            timeout = pipeline.config.services[service].health_timeout
            pipeline.platforms.of(run.env, service).wait_healthy(instance, timeout)
        return "healthy"

    def unhealthy(exc: Exception) -> Exception:
        for service, instance in run.instances.items():
            pipeline.platforms.of(run.env, service).stop(instance)
        db = restore(pipeline, run, "health", compatible_ok=True)
        finish(pipeline, run, "failed", str(exc))
        return failed(pipeline, run, "the new version did not become healthy", db, exc)

    def switch() -> None:
        for service in services:  # APIs first: a frontend never calls a backend not yet live
            old = pipeline.platforms.of(run.env, service).switch(run.instances[service])
            if old is not None:
                run.replaced[service] = old

    def drain() -> str:
        for instance in run.replaced.values():
            pipeline.drain(run.env, instance)
        return ", ".join(f"{i.service} {i.version}" for i in run.replaced.values()) or "nothing"

    started = "; ".join(_said(pipeline, run, services, "start"))
    checked = "; ".join(_said(pipeline, run, services, "health")) or "processes stay up"
    switched = "; ".join(_said(pipeline, run, services, "switch")) or "nothing to switch"
    drained = "; ".join(_said(pipeline, run, services, "drain")) or "nothing to drain"
    return [
        Step("start", f"{started}, beside the live version", start, unhealthy),
        Step("health", checked, health, unhealthy),
        Step("switch", switched, switch),
        Step("drain", f"the old version: {drained}", drain),
    ]
