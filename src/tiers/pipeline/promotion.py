"""The promotion guarantee: production runs only what the tier before it ran, and a
release a rollback undid stays held until a newer one is cut.

>>> check(pipeline, pipeline.environment("production"), target)    # doctest: +SKIP
OperationError: production deploys only what staging ran: ...
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tiers.config import Environment
from tiers.errors import OperationError
from tiers.git import Repo
from tiers.pipeline.paths import touched
from tiers.state import Deployment

if TYPE_CHECKING:
    from tiers.pipeline.deploy import Pipeline, Target

__all__ = ["check", "previous", "same_code", "undone"]


def previous(pipeline: Pipeline, env: Environment) -> Environment | None:
    """The environment before ``env`` on the promotion path (staging for production)."""
    found = None
    for other in pipeline.config.environments.values():
        if other.name == env.name:
            return found
        if other.trigger.kind != "local" and other.trigger.rank < env.trigger.rank:
            found = other
    return None


def check(pipeline: Pipeline, env: Environment, target: Target) -> None:
    """Refuse what the environment before never ran, and the release a rollback undid."""
    held = undone(pipeline, env.name)
    if held is not None and held.commit == target.commit:
        raise OperationError(
            f"{env.name} was rolled back from {held.version} ({target.commit[:12]}) "
            f"and is held until a newer release is cut; pass --force --reason TEXT "
            "to deploy it anyway"
        )
    before = previous(pipeline, env)
    if before is None:
        return
    ran = [
        d
        for d in pipeline.store.history(before.name, limit=500)
        if d.state in ("succeeded", "rolled-back") and same_code(pipeline, d.commit, target.commit)
    ]
    if not ran:
        raise OperationError(
            f"{env.name} deploys only what {before.name} ran: {target.commit[:12]} "
            f"({target.version}) was never deployed successfully to {before.name}; "
            f"deploy it there first, or pass --force --reason TEXT"
        )


def same_code(pipeline: Pipeline, ran: str | None, commit: str) -> bool:
    """Whether ``ran`` ships what ``commit`` does: the same commit, or an ancestor whose
    later changes touch no service (documentation, say)."""
    if not ran or ran == commit:
        return ran == commit
    repo = Repo.find(pipeline.project_dir)
    if not repo.is_ancestor(ran, commit):
        return False
    return not touched(pipeline.config, pipeline.config_path, repo.changed_paths(ran, commit))


def undone(pipeline: Pipeline, environment: str) -> Deployment | None:
    """The deployment the newest rollback undid, while nothing newer was deployed."""
    for deployment in pipeline.store.history(environment, limit=50):
        if deployment.state != "succeeded":
            continue
        if deployment.kind != "rollback":
            return None
        found = (deployment.manifest or {}).get("undoes")
        return pipeline.store.get(int(found)) if found is not None else None
    return None
