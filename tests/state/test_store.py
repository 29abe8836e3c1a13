"""Recording deployments and their steps, and reading them back, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from tiers.state import Deployment, StateStore, Step

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def deploy(
    store: StateStore,
    environment: str,
    version: str,
    manifest: dict[str, Any] | None = None,
    migration_before: str | None = None,
) -> int:
    return store.begin(environment, "deploy", version, COMMIT, "alice", manifest, migration_before)


def recorded(store: StateStore, run: int) -> Deployment:
    found = store.get(run)
    assert found is not None
    return found


def test_a_deployment_is_recorded_with_its_steps_in_order(store: StateStore) -> None:
    run = deploy(store, "staging", "2026.1126.010203", migration_before="0041")
    with store.step(run, "build"):
        pass
    with store.step(run, "migrate") as step:
        step.detail = "0041 -> 0042"
    store.record_step(run, "health", "ok", 812.5, "200 OK after 2 tries")
    store.finish(run, "succeeded", migration_after="0042", manifest={"backend": "img:42"})

    deployment = recorded(store, run)
    assert (deployment.environment, deployment.kind, deployment.version) == (
        "staging",
        "deploy",
        "2026.1126.010203",
    )
    assert (deployment.commit, deployment.actor, deployment.state) == (COMMIT, "alice", "succeeded")
    assert (deployment.migration_before, deployment.migration_after) == ("0041", "0042")
    assert deployment.manifest == {"backend": "img:42"}
    assert deployment.error is None
    assert deployment.started_at.tzinfo == UTC
    assert deployment.finished_at is not None
    assert deployment.finished_at >= deployment.started_at
    assert [(s.name, s.outcome, s.detail) for s in deployment.steps] == [
        ("build", "ok", None),
        ("migrate", "ok", "0041 -> 0042"),
        ("health", "ok", "200 OK after 2 tries"),
    ]
    assert all(isinstance(s.duration_ms, float) and s.duration_ms >= 0 for s in deployment.steps)
    assert deployment.steps[2].duration_ms == 812.5


def test_a_failing_step_is_recorded_as_failed_and_raises_again(store: StateStore) -> None:
    run = deploy(store, "staging", "v2")
    with pytest.raises(RuntimeError, match="alembic: relation users already exists"):  # noqa: SIM117
        with store.step(run, "migrate"):
            raise RuntimeError("alembic: relation users already exists")
    store.finish(run, "failed", error="migrate failed: alembic: relation users already exists")

    deployment = recorded(store, run)
    assert deployment.state == "failed"
    assert deployment.error == "migrate failed: alembic: relation users already exists"
    [step] = deployment.steps
    assert (step.name, step.outcome, step.detail) == (
        "migrate",
        "failed",
        "alembic: relation users already exists",
    )
    assert step.duration_ms is not None


def test_a_step_being_run_is_recorded_as_running(store: StateStore) -> None:
    run = deploy(store, "staging", "v3")
    with store.step(run, "build"):
        [step] = recorded(store, run).steps
        assert (step.name, step.outcome, step.duration_ms) == ("build", "running", None)


def test_history_is_newest_first_per_environment(store: StateStore) -> None:
    first = deploy(store, "staging", "v1")
    store.finish(first, "succeeded")
    elsewhere = deploy(store, "production", "v1")
    second = deploy(store, "staging", "v2")
    store.finish(second, "failed", error="health check failed")
    third = store.begin("staging", "rollback", "v1", COMMIT, "bob")
    store.finish(third, "succeeded")
    running = deploy(store, "staging", "v3")

    assert [d.id for d in store.history("staging")] == [running, third, second, first]
    assert [d.version for d in store.history("staging", limit=2)] == ["v3", "v1"]
    assert [d.id for d in store.history("production")] == [elsewhere]
    assert store.history("development") == []


def test_last_and_unfinished(store: StateStore) -> None:
    ok = deploy(store, "staging", "v1")
    store.finish(ok, "succeeded")
    rollback = store.begin("staging", "rollback", "v0", COMMIT, "bob")
    store.finish(rollback, "succeeded")
    failed = deploy(store, "staging", "v2")
    store.finish(failed, "failed")
    running = deploy(store, "staging", "v3")

    def id_of(found: Deployment | None) -> int | None:
        return found.id if found else None

    assert id_of(store.last("staging")) == rollback
    assert id_of(store.last("staging", kind="deploy")) == ok
    assert id_of(store.last("staging", state="failed")) == failed
    assert id_of(store.last("staging", state=None)) == running
    assert id_of(store.last("staging", state="rolled-back")) is None
    assert store.last("production") is None
    assert [d.id for d in store.unfinished("staging")] == [running]


def test_an_interrupted_deployment_is_marked_once(store: StateStore) -> None:
    run = deploy(store, "staging", "v4")
    with store.step(run, "build"):
        pass
    with store.step(run, "start"):
        note = "its deploy (pid 4242) died; found by alice"
        assert store.mark_interrupted(run, note) is True
        assert store.mark_interrupted(run, note) is False

    deployment = recorded(store, run)
    assert (deployment.state, deployment.error) == ("interrupted", note)
    assert deployment.finished_at is not None
    assert [(s.name, s.outcome) for s in deployment.steps] == [("build", "ok"), ("start", "ok")]
    assert store.unfinished("staging") == []


def test_running_steps_of_an_interrupted_deployment_are_failed(store: StateStore) -> None:
    run = deploy(store, "staging", "v5")
    store.record_step(run, "build", "ok", 10.0)
    store.record_step(run, "start", "running", 0.0)
    store.mark_interrupted(run, "deploy killed")
    steps = recorded(store, run).steps
    assert [(s.name, s.outcome, s.detail) for s in steps] == [
        ("build", "ok", None),
        ("start", "failed", "deploy killed"),
    ]


def test_to_json_has_stable_keys_and_iso_timestamps(store: StateStore) -> None:
    run = deploy(store, "staging", "v6", manifest={"frontend": {"files": 12}})
    with store.step(run, "build"):
        pass
    store.finish(run, "rolled-back", error="health check failed after switch")

    document = recorded(store, run).to_json()
    assert list(document) == [
        "id",
        "environment",
        "kind",
        "version",
        "commit",
        "actor",
        "state",
        "started_at",
        "finished_at",
        "migration_before",
        "migration_after",
        "manifest",
        "error",
        "steps",
    ]
    assert list(document["steps"][0]) == ["name", "started_at", "duration_ms", "outcome", "detail"]
    assert document["state"] == "rolled-back"
    assert document["manifest"] == {"frontend": {"files": 12}}
    for moment in (
        document["started_at"],
        document["finished_at"],
        document["steps"][0]["started_at"],
    ):
        assert moment.endswith("+00:00")
        assert datetime.fromisoformat(moment).tzinfo == UTC
    assert json.loads(json.dumps(document)) == document


def test_records_are_checked(store: StateStore) -> None:
    run = deploy(store, "staging", "v7")
    with pytest.raises(ValueError, match="end state 'running' is not one of"):
        store.finish(run, "running")
    with pytest.raises(ValueError, match="kind 'promote' is not one of deploy, rollback"):
        store.begin("staging", "promote", "v7", None, "alice")  # type: ignore[arg-type]
    with pytest.raises(LookupError, match="no deployment 999999"):
        store.finish(999_999, "succeeded")
    assert store.get(999_999) is None


def test_step_to_json() -> None:
    step = Step("build", datetime(2026, 11, 26, 1, 2, 3, tzinfo=UTC), 12.5, "ok", None)
    assert step.to_json() == {
        "name": "build",
        "started_at": "2026-11-26T01:02:03.000000+00:00",
        "duration_ms": 12.5,
        "outcome": "ok",
        "detail": None,
    }
