"""``tiers release``: ship exactly what staging ran, as a tag, a frontend branch and a deploy.

Preflight first, and nothing changes unless all of it passes: on the release branch with
a clean work tree, not behind its upstream, the environment before production (staging)
healthy and running this very commit, and changes since the last release that touch a
deployable service. Then: the version (``project.release.version``, a UTC strftime
pattern, behind ``tag_prefix``), an annotated tag, each production frontend's branch
fast-forwarded to the commit, one atomic push of both, and the production deploy of the
tag. A failure part-way says which steps happened and how to finish or undo them.

>>> plan = Releaser(pipeline).preflight()                    # doctest: +SKIP
>>> Releaser(pipeline).release(plan)
"""

from __future__ import annotations

import http.client
import json
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from tiers.config import Environment
from tiers.errors import OperationError, TiersError, UsageError
from tiers.git import Commit, Repo
from tiers.pipeline import promotion
from tiers.pipeline.deploy import Pipeline, Target
from tiers.pipeline.paths import touched

__all__ = ["Plan", "Releaser"]


@dataclass
class Plan:
    """What a release will do, decided by the preflight."""

    version: str
    commit: str
    previous: str | None
    changes: list[Commit]
    services: list[str]
    production: list[Environment]
    branches: dict[str, str | None] = field(default_factory=dict)
    """Frontend branch → the commit it points at now (None: it does not exist yet)."""
    force_branches: bool = False
    """Reset diverged branches (pushed with ``+``) instead of refusing."""

    def lines(self) -> list[str]:
        since = f"since {self.previous}" if self.previous else "(the first release)"
        out = [f"release {self.version}: {self.commit[:12]} {since}"]
        out += [f"  {c.short} {c.subject} ({c.author})" for c in self.changes]
        out.append(f"  services changed: {', '.join(self.services)}")
        out.append(f"  tag       {self.version} (annotated) on {self.commit[:12]}")
        for branch, old in self.branches.items():
            was = old[:12] if old else "a new branch"
            out.append(f"  branch    {branch}: {was} → {self.commit[:12]} (fast-forward)")
        envs = ", ".join(e.name for e in self.production)
        out.append("  push      the tag and branches, atomically")
        out.append(f"  deploy    {envs} from {self.version}")
        return out


class Releaser:
    def __init__(self, pipeline: Pipeline, now: Callable[[], datetime] | None = None) -> None:
        self.pipeline = pipeline
        self.config = pipeline.config
        self.settings = pipeline.config.project.release
        self.now = now or (lambda: datetime.now(UTC))
        self.repo = Repo.find(pipeline.project_dir)

    # -- preflight ---------------------------------------------------------------------------

    def preflight(self, allow_non_ff: bool = False) -> Plan:
        """Every check, in the order a user would fix them; raises at the first problem."""
        repo, branch = self.repo, self.settings.branch
        here = repo.branch()
        if here is None:
            raise OperationError(
                f"HEAD is detached; releases are cut from {branch}: git switch {branch}"
            )
        if here != branch:
            raise OperationError(
                f"on branch {here}; releases are cut from {branch}: git switch {branch}"
            )
        if dirty := repo.dirty():
            shown = ", ".join(dirty[:5]) + (" ..." if len(dirty) > 5 else "")
            raise OperationError(f"the work tree has changes ({shown}); commit or stash them first")
        commit = repo.resolve("HEAD")
        self._check_upstream(branch, commit)
        production = [e for e in self.config.environments.values() if e.trigger.kind == "release"]
        if not production:
            raise UsageError("no environment has trigger = { release = ... }; nothing to release")
        for env in production:
            self._check_before(env, commit)
        previous = self._last_release()
        since = repo.resolve(previous) if previous else None
        changed = self._services_changed(since, commit)
        version = self._version()
        return Plan(
            version=version,
            commit=commit,
            previous=previous,
            changes=repo.log(since, commit),
            services=changed,
            production=production,
            branches=self._branches(production, commit, allow_non_ff),
            force_branches=allow_non_ff,
        )

    def _check_upstream(self, branch: str, commit: str) -> None:
        upstream = self.repo.upstream(branch)
        if upstream is None:
            remote = self.settings.remote
            raise OperationError(
                f"{branch} has no upstream, so nothing says it is pushed; "
                f"git push --set-upstream {remote} {branch}"
            )
        remote = upstream.partition("/")[0]
        try:
            self.repo.fetch(remote)
        except TiersError as exc:
            raise OperationError(
                f"cannot fetch {remote} to compare with {upstream}: {exc}"
            ) from None
        if behind := self.repo.count(commit, upstream):
            raise OperationError(
                f"{branch} is {behind} commit(s) behind {upstream}; git pull, let staging "
                "deploy it, then release"
            )
        if ahead := self.repo.count(upstream, commit):
            raise OperationError(
                f"{branch} has {ahead} commit(s) not pushed to {upstream}; push them and let "
                "staging deploy them first"
            )

    def _check_before(self, env: Environment, commit: str) -> None:
        before = promotion.previous(self.pipeline, env)
        if before is None:
            return
        last = self.pipeline.store.last(before.name, "succeeded")
        if last is None or not promotion.same_code(self.pipeline, last.commit, commit):
            runs = f"runs {last.version} ({(last.commit or '')[:12]})" if last else "has no deploy"
            raise OperationError(
                f"{before.name} {runs}, not {commit[:12]}: production ships only what "
                f"{before.name} ran; deploy it there first (tiers on-push or tiers deploy "
                f"{before.name})"
            )
        for service, binding in before.services.items():
            path = self.config.services[service].health
            if not (path and binding.url):
                continue
            live = self.pipeline.platforms.live(before).get(service)
            problem = _unhealthy(binding.url + path, live.commit if live else None)
            if problem:
                raise OperationError(
                    f"{before.name} is not healthy: {service} {binding.url}{path} {problem}; "
                    "fix staging before releasing"
                )

    def _last_release(self) -> str | None:
        tags = self.repo.tags(f"{self.settings.tag_prefix}*")
        return next((t for t in tags if self.settings.is_release(t)), None)

    def _services_changed(self, since: str | None, commit: str) -> list[str]:
        paths = self.repo.changed_paths(since, commit)
        changed = touched(self.config, self.pipeline.config_path, paths)
        if not changed:
            raise OperationError(
                f"nothing to release: no change since {since[:12] if since else 'the start'} "
                "touches a deployable service's paths"
            )
        return changed

    def _version(self) -> str:
        version = self.settings.tag_prefix + self.now().strftime(self.settings.version)
        if self.repo.ref(f"refs/tags/{version}") is not None:
            raise OperationError(
                f"tag {version} already exists; wait a second and run it again, or delete it: "
                f"git tag -d {version}"
            )
        return version

    def _branches(
        self, production: list[Environment], commit: str, allow_non_ff: bool
    ) -> dict[str, str | None]:
        out: dict[str, str | None] = {}
        for env in production:
            for binding in env.services.values():
                if not binding.branch or binding.branch == self.settings.branch:
                    continue
                old = self.repo.ref(f"refs/heads/{binding.branch}")
                remote = self.repo.ref(f"refs/remotes/{self.settings.remote}/{binding.branch}")
                for seen in (old, remote):
                    if seen and not allow_non_ff and not self.repo.is_ancestor(seen, commit):
                        old = seen
                        break
                if old and not allow_non_ff and not self.repo.is_ancestor(old, commit):
                    raise OperationError(
                        f"{binding.branch} has diverged from {self.settings.branch} "
                        f"({old[:12]} is not an ancestor of {commit[:12]}); merge it into "
                        f"{self.settings.branch} first, or pass --force-branch to reset it"
                    )
                out[binding.branch] = old
        return out

    # -- release -----------------------------------------------------------------------------

    def release(self, plan: Plan) -> list[str]:
        """Tag, move branches, push, deploy; the deployments' summaries."""
        repo, done = self.repo, []
        repo.create_tag(plan.version, plan.commit, f"release {plan.version}")
        done.append(f"tag {plan.version}")
        try:
            for branch, old in plan.branches.items():
                repo.move_branch(branch, plan.commit, old)
                done.append(f"branch {branch}")
            repo.push(self.settings.remote, refs_of(plan))
        except TiersError as exc:
            undo = [f"git tag -d {plan.version}"] + [
                f"git branch -f {b} {o}" if o else f"git branch -D {b}"
                for b, o in plan.branches.items()
            ]
            raise OperationError(
                f"release {plan.version} stopped: done locally: {', '.join(done)}; not pushed, "
                f"nothing deployed. Finish with: git push --atomic {self.settings.remote} "
                f"{' '.join(refs_of(plan))} && tiers on-release {plan.version}; or undo with: "
                f"{'; '.join(undo)}\n{exc}"
            ) from None
        summaries = []
        for env in plan.production:
            target = Target(plan.version, plan.commit, plan.version)
            try:
                deployed = self.pipeline.deploy(env.name, target, wait=True)
            except TiersError as exc:
                raise OperationError(
                    f"release {plan.version} is tagged and pushed, but deploying {env.name} "
                    f"failed; fix it and run: tiers on-release {plan.version}\n{exc}"
                ) from None
            summaries.append(f"{env.name}: {deployed.version} serves (deployment {deployed.id})")
        return summaries


def refs_of(plan: Plan) -> list[str]:
    force = "+" if plan.force_branches else ""
    return [f"refs/tags/{plan.version}", *(f"{force}refs/heads/{b}" for b in plan.branches)]


def _unhealthy(url: str, commit: str | None) -> str | None:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            body = response.read()
    except (OSError, ValueError, http.client.HTTPException) as exc:
        return f"does not answer ({exc})"
    try:
        answer = json.loads(body)
    except ValueError:
        return None
    ran = answer.get("commit") if isinstance(answer, dict) else None
    if ran and commit and ran != commit:
        return f"reports commit {str(ran)[:12]}"
    return None
