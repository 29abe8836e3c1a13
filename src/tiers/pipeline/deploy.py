"""``tiers deploy`` and ``tiers up``: what a deploy ships, and shipping it.

The pipeline resolves the target (a ref, its commit, its version), reads that commit's
own tiers.toml (``commit``), holds the environment's lock, repairs what a killed run
left (``recovery``), checks the promotion guarantee (``promotion``), then runs the
deploy's plan (``steps``) step by step, recorded (``run``). A deploy killed outright
leaves its record ``running`` with nobody holding its lock; the next deploy or rollback
reports it as interrupted, stops what it had started and carries on.

Each service's declared secrets are read from the store before anything starts (a
missing one refuses the deploy, naming it) and handed to its platform by the plan's
``secrets`` step (``delivery``); ``apply`` redeploys the serving commit when they changed.

>>> pipeline = Pipeline(config, Path("tiers.toml"), store, Reporter(live=False))  # doctest: +SKIP
>>> pipeline.deploy("staging", ref="main")
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tiers.config import Config, Environment
from tiers.errors import OperationError, UsageError
from tiers.git import Repo
from tiers.pipeline import commit, delivery, promotion, recovery, steps
from tiers.pipeline.commit import Shipped
from tiers.pipeline.report import Reporter
from tiers.pipeline.run import Run, begin, ending, execute, finish, lock
from tiers.platforms.base import Instance, Platforms, Release
from tiers.state import Deployment, StateStore, default_holder

__all__ = ["Pipeline", "Target"]

RUN_ONLY = ("snapshot", "forced", "migration_after", "undoes", "db", "secrets")
"""Manifest keys that describe one run, not the release: a rollback does not inherit them."""
DbChoice = str  # "keep" | "downgrade" | "restore"


@dataclass(frozen=True)
class Target:
    """What a deploy ships: a ref, the commit it names, and the version it is called."""

    ref: str
    commit: str
    version: str


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
        """What ``deploy`` would do, step by step, naming the commands and addresses: the
        very steps a deploy runs, printed instead of run."""
        env = self.environment(environment)
        services = self.services(env)  # refuses a service whose platform is not installed
        db_url = self.platforms.database_url(env)
        run = Run(0, env, Release(target.version, target.commit), db_url, None, {})
        return steps.deploy_plan(self, run, target, services).lines()

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
            # what the deployed release declares, with the values the store holds now
            repo = Repo.find(self.project_dir)
            live = deployed[0]
            self.deliver(
                commit.config_at(repo, self.config_path, live.commit, live.version).config, env
            )
            with lock(self, environment, wait=True):
                self.prepare(env)
                recovery.repair(self, environment)
                for platform in self.platforms.serving(env):
                    platform.up(environment)
            return f"up, serving {deployed[0].version}"
        if env.trigger.kind not in ("push", "release") or not _in_git(self.project_dir):
            self.deliver(self.config, env)
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
        services = self.chosen(env, services)
        secrets = self.secrets(env, services)  # refused before anything starts
        with lock(self, environment, wait) as lease:
            self.prepare(env)  # the database must answer from here on
            recovery.repair(self, environment)
            if unless_served and self.serves(environment, services, target):
                return None
            if forced is None:
                promotion.check(self, env, target)
            manifest = self.manifest(env, target, services)
            if forced is not None:
                manifest["forced"] = forced
            run = begin(self, env, "deploy", target, manifest, lease)
            run.secrets = secrets
            self.report.line(f"{environment}: deployment {run.deployment} of {target.version}")
            with ending(self, run):
                execute(self, run, steps.deploy_plan(self, run, target, services))
                finish(self, run, "succeeded", None)
        found = self.store.get(run.deployment)
        assert found is not None
        return found

    def apply(self, environment: str, wait: bool = False) -> tuple[Deployment | None, str]:
        """Restart ``environment``'s release with the secrets the store holds now: a new
        deployment of the commit that serves, through every step of a deploy (so not a
        request fails), whose ``secrets`` step names what changed, by fingerprint. None,
        and why, when no declared secret changed; an OperationError when nothing was
        deployed."""
        self.deployable(environment)
        last = self.store.last(environment)
        if last is None or not last.commit:
            raise OperationError(
                f"{environment} has no deployment yet; "
                f"`tiers deploy {environment}` ships one with its secrets"
            )
        target = Target(last.version, last.commit, last.version)
        shipped = self.at(target)
        wanted = delivery.declared(
            shipped.config,
            shipped.environment(environment),
            shipped.services(shipped.environment(environment)),
        )
        now = delivery.fingerprints(self.project_dir, environment, wanted)
        if (last.manifest or {}).get("secrets", {}) == now:
            said = ", ".join(now) or "none declared"
            return None, f"{environment}: no secret changed since deployment {last.id} ({said})"
        services = (last.manifest or {}).get("services")
        done = shipped.deploy(environment, target, wait=wait, services=services)
        return done, ""

    def check_promotion(self, env: Environment, target: Target) -> None:
        """What the promotion guarantee refuses (see ``tiers.pipeline.promotion``)."""
        promotion.check(self, env, target)

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

    def chosen(self, env: Environment, services: list[str] | None) -> list[str]:
        every = self.services(env)
        if services is None:
            return every
        unknown = [s for s in services if s not in every]
        if unknown:
            raise UsageError(
                f"{env.name} deploys no service {unknown[0]!r}; its services: {', '.join(every)}"
            )
        return [s for s in every if s in services]

    # -- rollback ----------------------------------------------------------------------------

    def rollback(
        self,
        environment: str,
        to: str | None = None,
        db: DbChoice = "keep",
        force: bool = False,
        wait: bool = False,
        dry_run: bool = False,
    ) -> Deployment | list[str]:
        """Serve an earlier release again; see ``tiers.pipeline.rollback``."""
        from tiers.pipeline.rollback import rollback

        return rollback(self, environment, to, db=db, force=force, wait=wait, dry_run=dry_run)

    # -- shared ------------------------------------------------------------------------------

    @property
    def state_dir(self) -> Path:
        return self.project_dir / ".tiers"

    def relative(self) -> Path:
        """Where tiers.toml sits inside its repository (``.`` at the top)."""
        return self.project_dir.relative_to(Repo.find(self.project_dir).root)

    def snapshot_path(self, environment: str, deployment: int) -> Path:
        """Where the database snapshot taken by ``deployment`` is kept."""
        return self.state_dir / "snapshots" / environment / f"{deployment}.dump"

    def secrets(
        self, env: Environment, services: list[str], config: Config | None = None
    ) -> dict[str, dict[str, str]]:
        """Each service's secrets as ``config`` (else this pipeline's) declares them, with
        the values the store holds now (see ``tiers.pipeline.delivery``); refused when one
        has none."""
        config = config or self.config
        wanted = delivery.declared(config, config.environments[env.name], services)
        return delivery.read(self.project_dir, env.name, wanted)

    def unset_secrets(self, environment: str) -> list[str]:
        """What a deploy of ``environment`` would refuse for want of a secret's value, a
        line each (see ``delivery.unset``); read without a key."""
        env = self.environment(environment)
        wanted = delivery.declared(self.config, env, self.services(env))
        return delivery.unset(self.project_dir, environment, wanted)

    def deliver(self, config: Config, env: Environment) -> None:
        """Hand the platform of each service of ``env`` its secrets as ``config`` declares
        them (a deployed release's own tiers.toml, or the work tree's)."""
        declared = config.environments[env.name]
        found = [s for s in env.services if s in declared.services]
        for service, values in self.secrets(env, found, config).items():
            self.platforms.of(env, service).deliver(env.name, service, values)

    def prepare(self, env: Environment) -> None:
        """Everything ``env``'s release runs on, on each of its platforms."""
        for platform in self.platforms.serving(env):
            platform.prepare(env.name)

    def drain(self, env: Environment, instance: Instance) -> None:
        """Stop ``instance``, just switched away from, within its service's drain time."""
        timeout = self.config.services[instance.service].drain_timeout
        self.platforms.of(env, instance.service).stop(instance, drain=timeout, switched=True)

    def manifest(self, env: Environment, target: Target, services: list[str]) -> dict[str, Any]:
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
