"""What CI calls: ``tiers on-push`` and ``tiers on-release``, safe to run twice.

A push deploys each environment that follows the branch, and only the services whose
``paths`` the push touched (all of them when tiers.toml changed); changed migration files
are announced before anything runs. A published release deploys every environment that
follows releases. Both wait their turn behind a deploy in progress, and a commit an
environment already serves is not deployed again.

>>> Triggers(pipeline).on_push("main", before, after)            # doctest: +SKIP
['staging: deployed backend at 3f2a1c9 (deployment 12)']
"""

from __future__ import annotations

from tiers.config import Environment
from tiers.errors import UsageError
from tiers.git import Repo
from tiers.pipeline.deploy import Pipeline, Target
from tiers.pipeline.paths import matches, project_paths, touched

__all__ = ["Triggers"]

_NULL = "0" * 40  # GitHub's "before" of a branch's first push


class Triggers:
    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline
        self.config = pipeline.config
        self.repo = Repo.find(pipeline.project_dir)

    def on_push(
        self, branch: str, before: str | None, after: str, only: str | None = None
    ) -> list[str]:
        """Deploy what the push touched to each environment following ``branch`` (or just
        ``only``, as a CI job with that environment's secrets does)."""
        envs = [
            e for e in self._chosen(only) if e.trigger.kind == "push" and e.trigger.branch == branch
        ]
        if not envs:
            return [f"no environment follows {branch}; nothing to deploy"]
        commit = self.repo.resolve(after)
        out, since = [], None
        if before and before != _NULL:
            try:
                since = self.repo.resolve(before)
            except UsageError:  # a shallow checkout, or history force-pushed away
                out.append(f"{before[:12]} is not in this clone; deploying every service")
        paths = self.repo.changed_paths(since, commit)
        out += self._migrations(paths)
        changed = touched(self.config, self.pipeline.config_path, paths)
        target = Target(branch, commit, self.repo.short(commit))
        for env in envs:
            services = [s for s in changed if s in self.pipeline.services(env)]
            if not services:
                out.append(f"{env.name}: the push touches none of its services; nothing to do")
                continue
            done = self.pipeline.ship(
                env.name, target, wait=True, services=services, unless_served=True
            )
            out.append(
                f"{env.name}: already serves {target.version} or newer; nothing to do"
                if done is None
                else f"{env.name}: deployed {', '.join(services)} at {done.version} "
                f"(deployment {done.id})"
            )
        return out

    def on_release(self, tag: str, only: str | None = None) -> list[str]:
        envs = [e for e in self._chosen(only) if e.trigger.kind == "release"]
        if not envs:
            return ["no environment follows releases; nothing to deploy"]
        commit = self.repo.resolve(tag)
        target = Target(tag, commit, tag)
        out = []
        for env in envs:
            done = self.pipeline.ship(env.name, target, wait=True, unless_served=True)
            out.append(
                f"{env.name}: already serves {tag}; nothing to do"
                if done is None
                else f"{env.name}: deployed {tag} (deployment {done.id})"
            )
        return out

    def _chosen(self, only: str | None) -> list[Environment]:
        if only is None:
            return list(self.config.environments.values())
        return [self.pipeline.environment(only)]

    def _migrations(self, paths: list[str]) -> list[str]:
        globs = [g for s in self.config.services.values() for g in s.migrations]
        local = project_paths(self.pipeline.config_path, self.repo, paths)
        changed = [p for p in local if any(matches(p, g) for g in globs)]
        return [f"migrations changed: {', '.join(changed)}"] if changed else []
