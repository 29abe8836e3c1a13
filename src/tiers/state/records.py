"""What the state store remembers about a deployment: the run and its steps.

A :class:`Deployment` is one ``tiers deploy`` (or rollback) of one environment, from the
moment it took the lock to its end state; its :class:`Step` list says what ran, for how
long and how it ended. Records are frozen snapshots read from the database, and
``to_json()`` gives the stable shape that every ``--json`` output uses:

>>> deployment.to_json()["steps"][0]                            # doctest: +SKIP
{'name': 'migrate', 'started_at': '2026-11-26T01:02:03.000000+00:00',
 'duration_ms': 812.5, 'outcome': 'ok', 'detail': None}

End states: ``succeeded``; ``failed`` (it failed before traffic was switched, so the old
release still serves); ``rolled-back`` (it switched, then went back); ``interrupted``
(its process died or was stopped, found later as a ``running`` record nobody owns).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

Kind = Literal["deploy", "rollback"]
State = Literal["running", "succeeded", "failed", "rolled-back", "interrupted"]
Outcome = Literal["ok", "failed", "running"]

KINDS: tuple[Kind, ...] = ("deploy", "rollback")
STATES: tuple[State, ...] = ("running", "succeeded", "failed", "rolled-back", "interrupted")
OUTCOMES: tuple[Outcome, ...] = ("ok", "failed", "running")


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat(timespec="microseconds") if moment else None


@dataclass(frozen=True)
class Step:
    """One step of a deployment; ``duration_ms`` is None while it is still running."""

    name: str
    started_at: datetime
    duration_ms: float | None
    outcome: Outcome
    detail: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "started_at": _iso(self.started_at),
            "duration_ms": self.duration_ms,
            "outcome": self.outcome,
            "detail": self.detail,
        }


@dataclass(frozen=True)
class Deployment:
    """One deployment or rollback of one environment, as recorded."""

    id: int
    environment: str
    kind: Kind
    version: str
    commit: str | None
    actor: str
    started_at: datetime
    finished_at: datetime | None
    state: State
    migration_before: str | None = None
    migration_after: str | None = None
    manifest: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    steps: list[Step] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """Stable keys, ISO 8601 timestamps in UTC: the ``--json`` shape of a deployment."""
        return {
            "id": self.id,
            "environment": self.environment,
            "kind": self.kind,
            "version": self.version,
            "commit": self.commit,
            "actor": self.actor,
            "state": self.state,
            "started_at": _iso(self.started_at),
            "finished_at": _iso(self.finished_at),
            "migration_before": self.migration_before,
            "migration_after": self.migration_after,
            "manifest": self.manifest,
            "error": self.error,
            "steps": [step.to_json() for step in self.steps],
        }
