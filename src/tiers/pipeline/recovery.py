"""Repairing what a killed tiers left: deployments still ``running`` with nobody holding
their lock are ended as interrupted, the migration of one that had not switched is
undone from its snapshot, and whatever they started is stopped.

>>> repair(pipeline, "staging")                                   # doctest: +SKIP
[Deployment(id=7, state='running', ...)]
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tiers.pipeline.run import settle
from tiers.providers import databases
from tiers.state import Deployment

if TYPE_CHECKING:
    from tiers.pipeline.deploy import Pipeline

__all__ = ["repair"]


def repair(pipeline: Pipeline, environment: str) -> list[Deployment]:
    """End deployments left ``running`` by a killed tiers, undo the migration of one that
    had not switched, and stop what they started; the deployments repaired."""
    env = pipeline.environment(environment)
    found = pipeline.store.unfinished(environment)
    for deployment in found:
        step = next((s.name for s in deployment.steps if s.outcome == "running"), "?")
        pipeline.store.mark_interrupted(
            deployment.id, f"tiers stopped during its {step} step; repaired by the next run"
        )
        live = pipeline.platforms.live(env).values()
        switched = any(i.tag == str(deployment.id) for i in live)
        what = "it had switched" if switched else _undo(pipeline, environment, deployment)
        pipeline.report.line(
            f"{environment}: deployment {deployment.id} ({deployment.version}) was "
            f"interrupted during {step}; {what}"
        )
    settle(pipeline, env)
    return found


def _undo(pipeline: Pipeline, environment: str, deployment: Deployment) -> str:
    """The database of a deployment killed before its switch, as it was before it."""
    db_url = pipeline.platforms.database_url(pipeline.environment(environment))
    dump = pipeline.snapshot_path(environment, deployment.id)
    snapped = any(s.name == "snapshot" and s.outcome == "ok" for s in deployment.steps)
    if not (db_url and snapped and dump.exists()):
        return "what serves is unchanged"
    snapshot = databases.Snapshot.load(dump, db_url)
    if databases.fingerprint(db_url) == snapshot.fingerprint:
        return "what serves and the database schema are unchanged"
    databases.restore(snapshot, db_url)
    return "what serves is unchanged and its migration was undone from the snapshot"
