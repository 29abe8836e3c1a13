"""``tiers deploy`` and ``tiers rollback``: the pipeline's steps, in order, recorded.

A deploy holds the environment's lock from start to end, so two never interleave. Before
the switch, any failure leaves the old version serving: the new one is stopped and the
database is restored from the snapshot when the failed step changed its schema (or, after
a failed health check, unless every migration applied declares ``COMPATIBLE = True``).
After the switch, the old version drains and stops. A deploy killed outright leaves its
record ``running`` with nobody holding its lock; the next deploy or rollback reports it
as interrupted, stops what it had started and carries on.

>>> pipeline = Pipeline(config, Path("tiers.toml"), store, Reporter(live=False))  # doctest: +SKIP
>>> pipeline.deploy("staging", ref="main")
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tiers.config import Config, Environment
from tiers.config.model import redact
from tiers.errors import OperationError, PlatformError, TiersError, UsageError
from tiers.git import Repo
from tiers.pipeline import commit
from tiers.pipeline.commit import Shipped
from tiers.pipeline.migrations import Migrations
from tiers.pipeline.paths import touched
from tiers.pipeline.report import Reporter, StepNote
from tiers.platforms.base import Artifact, Instance, Platforms
from tiers.platforms.runtime import Release
from tiers.providers import databases
from tiers.state import Deployment, Lease, StateStore, default_holder

__all__ = ["Pipeline", "Target"]

LEASE_SECONDS = 30.0
RUN_ONLY = ("snapshot", "forced", "migration_after", "undoes", "db")
"""Manifest keys that describe one run, not the release: a rollback does not inherit them."""
DbChoice = str  # "keep" | "downgrade" | "restore"


@dataclass(frozen=True)
class Target:
    """What a deploy ships: a ref, the commit it names, and the version it is called."""

    ref: str
    commit: str
    version: str


@dataclass
class Run:
    """One deploy or rollback in progress."""

    deployment: int
    env: Environment
    release: Release
    source: Path
    artifacts: dict[str, Artifact]
    db_url: str | None
    head_before: str | None
    snapshot: databases.Snapshot | None = None
    lease: Lease | None = None


class Pipeline:
    def __init__(
        self,
        config: Config,
        config_path: Path,
        store: StateStore,
        report: Reporter,
        actor: str | None = None,
        shipped: Shipped | None = None,
    ) -> None:
        """``config`` is the work tree's tiers.toml, or ``shipped``'s: see :meth:`at`."""
        self.config = config
        self.shipped = shipped
        self.config_path = config_path.resolve()
        self.project_dir = self.config_path.parent
        self.store = store
        self.report = report
        self.actor = actor or default_holder().partition(" pid ")[0]
        self.platforms = Platforms(config, self.project_dir)

    # -- what --------------------------------------------------------------------------------

    def at(self, target: Target, forced: str | None = None) -> Pipeline:
        """The pipeline for what ``target`` ships: its commit's own tiers.toml.

        Says what uncommitted change is not deployed, and refuses a commit whose
        tiers.toml fails ``tiers check`` unless ``forced`` (a reason, recorded).
        """
        if self.shipped is not None and self.shipped.commit == target.commit:
            return self
        repo = Repo.find(self.project_dir)
        for note in commit.unshipped(repo, self.config, self.config_path, target.commit):
            self.report.line(note)
        shipped = commit.config_at(repo, self.config_path, target.commit, target.version)
        commit.refuse_errors(shipped, target.version, forced)
        return Pipeline(
            shipped.config, self.config_path, self.store, self.report, self.actor, shipped
        )

    def environment(self, name: str) -> Environment:
        if name not in self.config.environments:
            known = ", ".join(self.config.environments)
            raise UsageError(f"no environment {name!r}; known: {known}")
        return self.config.environments[name]

    def services(self, env: Environment) -> list[str]:
        """The services a deploy of ``env`` ships, APIs before the frontends that call them."""
        found = [name for name in env.services if not self.config.services[name].optional]
        if not found:
            raise UsageError(f"{env.name} binds no service to a platform; nothing to deploy")
        for name in found:  # every one of them, or none: never a part left out silently
            try:
                self.platforms.of(env, name)
            except UsageError as exc:
                raise UsageError(f"{env.name}: cannot deploy {name}: {exc}") from None
        return sorted(found, key=lambda s: self.config.services[s].kind == "frontend")

    def deployable(self, name: str) -> Environment:
        """The environment ``name``, refused when it runs the work tree (a deploy would
        freeze it at one commit, and nothing would bring the work tree back)."""
        env = self.environment(name)
        if env.local:
            raise UsageError(
                f'{name} runs the work tree (trigger = "local") and is never deployed; '
                f"`tiers up {name}` runs it as the work tree is now (or `tiers dev`)"
            )
        return env

    def target(self, env: Environment, ref: str | None) -> Target:
        self.deployable(env.name)
        repo = Repo.find(self.project_dir)
        ref = ref or self._default_ref(env, repo)
        commit = repo.resolve(ref)
        version = ref if repo.ref(f"refs/tags/{ref}") else repo.short(commit)
        return Target(ref, commit, version)

    def _default_ref(self, env: Environment, repo: Repo) -> str:
        trigger = env.trigger
        if trigger.kind == "push" and trigger.branch:
            return trigger.branch
        if trigger.kind == "release":
            settings = self.config.project.release
            tags = [t for t in repo.tags(f"{settings.tag_prefix}*") if settings.is_release(t)]
            if not tags:
                raise UsageError(
                    f"{env.name} deploys releases and none has been cut yet; "
                    f"cut one (tiers release) or pass --ref"
                )
            return tags[0]
        return "HEAD"

    def plan(self, environment: str, target: Target) -> list[str]:
        """What ``deploy`` would do, step by step, naming the commands and addresses."""
        env = self.environment(environment)
        specs = {name: self.config.services[name] for name in self.services(env)}
        short = target.commit[:12]
        lines = [f"deploy {environment}: {target.ref} → {short} as version {target.version}"]
        built = [
            f"{name}: {spec.build}"
            + (f" (virtualenv kept while {spec.lock} is unchanged)" if spec.lock else "")
            for name, spec in specs.items()
            if spec.build
        ]
        lines.append(
            f"  build     export {short} to .tiers/releases/; "
            + ("; ".join(built) or "nothing to build")
        )
        if url := self.platforms.database_url(env):
            lines.append(f"  snapshot  {redact(url)}")
        released = [f"{n}: {s.release_command}" for n, s in specs.items() if s.release_command]
        lines.append("  release   " + ("; ".join(released) or "no release_command"))
        started = [
            f"{n}: {', '.join(s.processes)} on fresh ports" if s.processes else f"{n}: its files"
            for n, s in specs.items()
        ]
        lines.append("  start     " + "; ".join(started) + ", beside the live version")
        checked = [
            f"{n}: {s.health} within {s.health_timeout:g}s" for n, s in specs.items() if s.health
        ]
        lines.append("  health    " + ("; ".join(checked) or "processes stay up"))
        urls = [f"{env.services[n].url} → new {n}" for n in specs if env.services[n].url]
        lines.append("  switch    " + ("; ".join(urls) or "nothing to switch"))
        grace = ", ".join(f"{n} {s.drain_timeout:g}s" for n, s in specs.items() if s.processes)
        lines.append(f"  drain     the old version: SIGTERM, SIGKILL after {grace or '-'}")
        return lines

    # -- up ----------------------------------------------------------------------------------

    def up(self, environment: str) -> str:
        """Bring ``environment`` up as its trigger says; what happened, in words.

        A release already deployed keeps serving (restarted if it stopped). Otherwise an
        environment that follows a branch deploys it, one that follows releases deploys
        the latest release tag (or waits for the first), and a local one runs the work
        tree, as does every environment of a project outside git.
        """
        env = self.environment(environment)
        deployed = [i for i in self.platforms.live(env).values() if i.tag]
        if deployed and not env.local:  # a local tier frozen once runs its work tree again
            with self._lock(environment, wait=True):
                self.prepare(env)
                self.repair(environment)
                for platform in self.platforms.serving(env):
                    platform.up(environment)
            return f"up, serving {deployed[0].version}"
        if env.trigger.kind not in ("push", "release") or not _in_git(self.project_dir):
            for platform in self.platforms.serving(env):
                platform.up(environment)
            return "up, from the work tree"
        try:
            target = self.target(env, None)
        except UsageError as exc:
            return f"not deployed: {exc}"
        self.deploy(environment, target)
        ref = f" ({target.ref})" if target.ref != target.version else ""
        return f"up, deployed {target.version}{ref}"

    # -- deploy ------------------------------------------------------------------------------

    def deploy(
        self,
        environment: str,
        target: Target,
        *,
        wait: bool = False,
        services: list[str] | None = None,
        forced: str | None = None,
    ) -> Deployment:
        """Ship ``target`` to ``environment``; see ``ship``."""
        done = self.ship(environment, target, wait=wait, services=services, forced=forced)
        assert done is not None
        return done

    def ship(
        self,
        environment: str,
        target: Target,
        *,
        wait: bool = False,
        services: list[str] | None = None,
        forced: str | None = None,
        unless_served: bool = False,
    ) -> Deployment | None:
        """Ship ``target`` to ``environment`` (all its services, or ``services``).

        ``forced`` (a reason, recorded) lifts the promotion guarantee and the hold after
        a rollback. With ``unless_served``, nothing happens (None) when, once the lock is
        ours, the environment already serves the target or a commit containing it.
        """
        env = self.deployable(environment)  # refused before anything else
        if self.shipped is None or self.shipped.commit != target.commit:
            return self.at(target, forced).ship(
                environment,
                target,
                wait=wait,
                services=services,
                forced=forced,
                unless_served=unless_served,
            )
        services = self._chosen(env, services)
        with self._lock(environment, wait) as lease:
            self.prepare(env)  # the database must answer from here on
            self.repair(environment)
            if unless_served and self.serves(environment, services, target):
                return None
            if forced is None:
                self.check_promotion(env, target)
            db_url = self.platforms.database_url(env)
            head = head_of(db_url)
            manifest = self._manifest(env, target, services)
            if forced is not None:
                manifest["forced"] = forced
            deployment = self.store.begin(
                environment, "deploy", target.version, target.commit, self.actor, manifest, head
            )
            lease.attach(deployment)
            self.report.line(f"{environment}: deployment {deployment} of {target.version}")
            release = Release(target.version, target.commit)
            run = Run(deployment, env, release, Path(), {}, db_url, head, lease=lease)
            with self._ending(run, manifest):
                self._build(run, services)
                self._ship(run, services, manifest)
        found = self.store.get(deployment)
        assert found is not None
        return found

    @contextlib.contextmanager
    def _ending(self, run: Run, manifest: dict[str, Any]) -> Iterator[None]:
        """End the record however the run ends; what served before keeps serving."""
        try:
            yield
        except KeyboardInterrupt:
            self._abandon(run, manifest, "interrupted", "stopped by a signal (Ctrl-C or SIGTERM)")
            raise
        except Exception as exc:
            self._abandon(run, manifest, "failed", str(exc) or type(exc).__name__)
            if isinstance(exc, TiersError):
                raise
            raise OperationError(
                f"{run.env.name}: deployment {run.deployment} failed: {exc!r}"
            ) from exc

    def _abandon(self, run: Run, manifest: dict[str, Any], state: Any, why: str) -> None:
        found = self.store.get(run.deployment)
        if found is not None and found.state == "running":
            live = self.platforms.live(run.env).values()
            if not any(i.tag == str(run.deployment) for i in live):
                self._restore(run, "it ended", compatible_ok=True)  # nothing switched
            self._end(run, state, why, manifest)
        self._settle(run.env.name)

    def _settle(self, environment: str) -> None:
        """Point each site at what live.json says serves, then stop every other instance."""
        env = self.environment(environment)
        for platform in self.platforms.serving(env):
            for name in platform.settle(environment):
                self.report.line(f"{environment}: stopped {name}, not the live release")

    def serves(self, environment: str, services: list[str], target: Target) -> bool:
        """Whether every one of ``services`` runs a deployed ``target``, or a later commit
        that contains it (so a late CI job for an older push or tag changes nothing)."""
        live = self.platforms.live(self.environment(environment))
        repo = Repo.find(self.project_dir)

        def contains(instance: Instance) -> bool:
            if not instance.tag:  # the work tree, not a deployed release
                return False
            if instance.commit == target.commit:
                return target.ref != target.version or instance.version == target.version
            return repo.is_ancestor(target.commit, instance.commit)

        return all(s in live and contains(live[s]) for s in services)

    def _chosen(self, env: Environment, services: list[str] | None) -> list[str]:
        every = self.services(env)
        if services is None:
            return every
        unknown = [s for s in services if s not in every]
        if unknown:
            raise UsageError(
                f"{env.name} deploys no service {unknown[0]!r}; its services: {', '.join(every)}"
            )
        return [s for s in every if s in services]

    def previous(self, env: Environment) -> Environment | None:
        """The environment before ``env`` on the promotion path (staging for production)."""
        found = None
        for other in self.config.environments.values():
            if other.name == env.name:
                return found
            if other.trigger.kind != "local" and other.trigger.rank < env.trigger.rank:
                found = other
        return None

    def check_promotion(self, env: Environment, target: Target) -> None:
        """Refuse what the environment before never ran, and the release a rollback undid."""
        undone = self._undone(env.name)
        if undone is not None and undone.commit == target.commit:
            raise OperationError(
                f"{env.name} was rolled back from {undone.version} ({target.commit[:12]}) "
                f"and is held until a newer release is cut; pass --force --reason TEXT "
                "to deploy it anyway"
            )
        before = self.previous(env)
        if before is None:
            return
        ran = [
            d
            for d in self.store.history(before.name, limit=500)
            if d.state in ("succeeded", "rolled-back") and self.same_code(d.commit, target.commit)
        ]
        if not ran:
            raise OperationError(
                f"{env.name} deploys only what {before.name} ran: {target.commit[:12]} "
                f"({target.version}) was never deployed successfully to {before.name}; "
                f"deploy it there first, or pass --force --reason TEXT"
            )

    def same_code(self, ran: str | None, commit: str) -> bool:
        """Whether ``ran`` ships what ``commit`` does: the same commit, or an ancestor whose
        later changes touch no service (documentation, say)."""
        if not ran or ran == commit:
            return ran == commit
        repo = Repo.find(self.project_dir)
        if not repo.is_ancestor(ran, commit):
            return False
        return not touched(self.config, self.config_path, repo.changed_paths(ran, commit))

    def _undone(self, environment: str) -> Deployment | None:
        """The deployment the newest rollback undid, while nothing newer was deployed."""
        for deployment in self.store.history(environment, limit=50):
            if deployment.state != "succeeded":
                continue
            if deployment.kind != "rollback":
                return None
            undone = (deployment.manifest or {}).get("undoes")
            return self.store.get(int(undone)) if undone is not None else None
        return None

    def _build(self, run: Run, services: list[str]) -> None:
        with self._step(run, "build") as note:
            repo = Repo.find(self.project_dir)
            exported = repo.export(
                run.release.commit, self.state_dir / "releases" / run.release.commit
            )
            run.source = exported / self.project_dir.relative_to(repo.root)
            notes = []
            for service in services:
                artifact = self.platforms.of(run.env, service).build(service, run.source)
                run.artifacts[service] = artifact
                notes.append(f"{service} {artifact.note}")
            note.text = "; ".join(notes)

    def _ship(self, run: Run, services: list[str], manifest: dict[str, Any]) -> None:
        if run.db_url:
            with self._step(run, "snapshot") as note:
                dump = self.snapshot_path(run.env.name, run.deployment)
                dump.parent.mkdir(parents=True, exist_ok=True)
                run.snapshot = databases.snapshot(run.db_url, dump)
                manifest["snapshot"] = str(dump)
                note.text = f"migration head {run.snapshot.migration_head or 'none'}"
        try:
            with self._step(run, "release") as note:
                for service in services:
                    if command := self.config.services[service].release_command:
                        self.platforms.of(run.env, service).run(
                            run.env.name, service, run.release, run.artifacts[service], command
                        )
                note.text = f"migration head {head_of(run.db_url) or 'none'}"
        except PlatformError as exc:
            db = self._restore(run, "release")
            self._end(run, "failed", str(exc), manifest)
            raise self._failed(run, "its release command failed", db, exc) from None
        new = self._start(run, services, manifest)
        with self._step(run, "switch"):
            old = {s: self.platforms.of(run.env, s).switch(new[s]) for s in services}
        with self._step(run, "drain") as note:
            stopped = [i for i in old.values() if i is not None]
            for instance in stopped:
                self.drain(run.env, instance)
            note.text = ", ".join(f"{i.service} {i.version}" for i in stopped) or "nothing"
        self._end(run, "succeeded", None, manifest)

    def _start(
        self, run: Run, services: list[str], manifest: dict[str, Any]
    ) -> dict[str, Instance]:
        new: dict[str, Instance] = {}
        try:
            with self._step(run, "start"):
                for service in services:
                    new[service] = self.platforms.of(run.env, service).start(
                        run.env.name,
                        service,
                        run.release,
                        run.artifacts[service],
                        tag=str(run.deployment),
                    )
            with self._step(run, "health") as note:
                for service, instance in new.items():
                    timeout = self.config.services[service].health_timeout
                    self.platforms.of(run.env, service).wait_healthy(instance, timeout)
                note.text = "healthy"
        except Exception as exc:
            for service, instance in new.items():
                self.platforms.of(run.env, service).stop(instance)
            db = self._restore(run, "health", compatible_ok=True)
            self._end(run, "failed", str(exc), manifest)
            raise self._failed(run, "the new version did not become healthy", db, exc) from None
        return new

    # -- rollback ----------------------------------------------------------------------------

    def rollback(
        self,
        environment: str,
        to: str | None = None,
        db: DbChoice = "keep",
        force: bool = False,
        wait: bool = False,
    ) -> Deployment:
        """Serve an earlier release again; see ``tiers.pipeline.rollback``."""
        from tiers.pipeline.rollback import rollback

        return rollback(self, environment, to, db=db, force=force, wait=wait)

    # -- shared ------------------------------------------------------------------------------

    @property
    def state_dir(self) -> Path:
        return self.project_dir / ".tiers"

    def snapshot_path(self, environment: str, deployment: int) -> Path:
        """Where the database snapshot taken by ``deployment`` is kept."""
        return self.state_dir / "snapshots" / environment / f"{deployment}.dump"

    def prepare(self, env: Environment) -> None:
        """Everything ``env``'s release runs on, on each of its platforms."""
        for platform in self.platforms.serving(env):
            platform.prepare(env.name)

    def drain(self, env: Environment, instance: Instance) -> None:
        """Stop ``instance``, just switched away from, within its service's drain time."""
        timeout = self.config.services[instance.service].drain_timeout
        self.platforms.of(env, instance.service).stop(instance, drain=timeout, switched=True)

    def _relative(self) -> Path:
        return self.project_dir.relative_to(Repo.find(self.project_dir).root)

    @contextlib.contextmanager
    def _lock(self, environment: str, wait: bool) -> Iterator[Lease]:
        """The environment's deploy lock, held for the block; a lease left by a dead
        holder is taken over and said so."""

        def waiting(info: Any) -> None:
            self.report.line(f"{environment}: waiting for {info.describe()}")

        holder = default_holder()
        with self.store.lock(
            environment, holder, wait=wait, lease_seconds=LEASE_SECONDS, on_wait=waiting
        ) as lease:
            if lease.took_over is not None:
                self.report.line(
                    f"{environment}: took over the lock left by {lease.took_over.describe()}"
                )
            yield lease

    def repair(self, environment: str) -> list[Deployment]:
        """End deployments left ``running`` by a killed tiers, undo the migration of one that
        had not switched, and stop what they started."""
        found = self.store.unfinished(environment)
        for deployment in found:
            step = next((s.name for s in deployment.steps if s.outcome == "running"), "?")
            self.store.mark_interrupted(
                deployment.id, f"tiers stopped during its {step} step; repaired by the next run"
            )
            live = self.platforms.live(self.environment(environment)).values()
            switched = any(i.tag == str(deployment.id) for i in live)
            what = "it had switched" if switched else self._undo(environment, deployment)
            self.report.line(
                f"{environment}: deployment {deployment.id} ({deployment.version}) was "
                f"interrupted during {step}; {what}"
            )
        self._settle(environment)
        return found

    def _undo(self, environment: str, deployment: Deployment) -> str:
        """The database of a deployment killed before its switch, as it was before it."""
        env = self.environment(environment)
        db_url = self.platforms.database_url(env)
        dump = self.snapshot_path(environment, deployment.id)
        snapped = any(s.name == "snapshot" and s.outcome == "ok" for s in deployment.steps)
        if not (db_url and snapped and dump.exists()):
            return "what serves is unchanged"
        snapshot = databases.Snapshot.load(dump, db_url)
        if databases.fingerprint(db_url) == snapshot.fingerprint:
            return "what serves and the database schema are unchanged"
        databases.restore(snapshot, db_url)
        return "what serves is unchanged and its migration was undone from the snapshot"

    @contextlib.contextmanager
    def _step(self, run: Run, name: str) -> Iterator[StepNote]:
        """A step shown by the reporter and recorded in the store, with what it noted."""
        if run.lease is not None:
            run.lease.check()  # never act on an environment whose lock was taken over
        with (
            self.store.step(run.deployment, name) as recorded,
            self.report.step(run.env.name, name) as note,
        ):
            try:
                yield note
            finally:
                recorded.detail = note.text or None

    def _restore(self, run: Run, after: str, compatible_ok: bool = False) -> str:
        """Put the database back as it was before this run; what happened, in words."""
        if run.snapshot is None or run.db_url is None:
            return "the database was not snapshotted"
        if databases.fingerprint(run.db_url) == run.snapshot.fingerprint:
            return "the database schema is unchanged"
        if compatible_ok:
            globs = [g for s in self.config.services.values() for g in s.migrations]
            applied = Migrations.read(run.source, globs).between(
                run.head_before, head_of(run.db_url)
            )
            if applied and all(r.compatible for r in applied):
                return "the database keeps its compatible migrations"
        with self._step(run, "restore") as note:
            databases.restore(run.snapshot, run.db_url)
            note.text = f"database restored from the snapshot taken before {after}"
        return "the database was restored from its snapshot"

    def _failed(self, run: Run, why: str, db: str, exc: Exception) -> OperationError:
        live = self.platforms.live(run.env)
        serving = ", ".join(f"{s} {i.version}" for s, i in live.items()) or "nothing yet"
        return OperationError(
            f"{run.env.name}: deployment {run.deployment} failed: {why}; nothing was "
            f"switched ({serving} still serving) and {db}.\n{exc}"
        )

    def _end(self, run: Run, state: Any, error: str | None, manifest: dict[str, Any]) -> None:
        manifest["migration_after"] = head_of(run.db_url)
        self.store.finish(
            run.deployment,
            state,
            migration_after=manifest["migration_after"],
            error=error,
            manifest=manifest,
        )

    def _manifest(self, env: Environment, target: Target, services: list[str]) -> dict[str, Any]:
        """What makes the deployment reproducible: code, configuration, bindings."""
        text = self.shipped.text.encode() if self.shipped else self.config_path.read_bytes()
        bindings = {s: env.services[s].model_dump(mode="json", exclude_none=True) for s in services}
        resources = {
            name: part.model_dump(mode="json", exclude_none=True)
            for name, part in (
                ("database", env.database),
                ("redis", env.redis),
                ("storage", env.storage),
            )
            if part is not None
        }
        return {
            "ref": target.ref,
            "commit": target.commit,
            "version": target.version,
            "services": services,
            "config_sha256": hashlib.sha256(text).hexdigest(),
            "bindings": bindings,
            "resources": json.loads(json.dumps(resources)),
            "namespace": env.namespace,
        }


def _in_git(path: Path) -> bool:
    try:
        Repo.find(path)
    except UsageError:
        return False
    return True


def head_of(url: str | None) -> str | None:
    return databases.migration_head(url) if url else None
