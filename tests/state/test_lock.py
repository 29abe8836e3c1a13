"""The deploy lock across threads and processes, on SQLite and PostgreSQL."""

from __future__ import annotations

import os
import queue
import re
import signal
import threading
import time
from contextlib import ExitStack
from datetime import UTC
from pathlib import Path

import pytest
import sqlalchemy as sa

from tiers.errors import LockHeld, OperationError
from tiers.state import Lease, LockInfo, StateStore, default_holder
from tiers.state.schema import locks

from .conftest import Holder

WAIT = 30.0  # seconds: only a bound on a hang, never a measured time


def test_a_held_lock_is_refused_naming_its_holder(
    store: StateStore, state_url: str | None, tmp_path: Path
) -> None:
    run = store.begin("staging", "deploy", "v1", None, "alice")
    with (
        store.lock("staging", "alice@laptop pid 1234", deployment_id=run),
        StateStore.open(state_url, tmp_path) as other,  # as from another process
        pytest.raises(LockHeld) as caught,
        other.lock("staging", "bob@ci pid 99"),
    ):
        pass
    error = caught.value
    assert re.fullmatch(
        rf"staging is being deployed by alice@laptop pid 1234 since "
        rf"\d{{4}}-\d\d-\d\d \d\d:\d\d:\d\d UTC \(deployment {run}\); "
        r"wait for it or pass --wait to queue",
        str(error),
    )
    assert (error.environment, error.holder, error.deployment_id) == (
        "staging",
        "alice@laptop pid 1234",
        run,
    )
    assert error.since.tzinfo == UTC
    assert f"{error.since:%Y-%m-%d %H:%M:%S} UTC" in str(error)
    assert error.exit_code == 1


def test_the_lock_is_released_after_the_block(store: StateStore) -> None:
    with store.lock("staging", "alice") as lease:
        assert lease.took_over is None
        held = store.locked("staging")
        assert held is not None
        assert (held.holder, held.deployment_id) == ("alice", None)
    assert store.locked("staging") is None
    with store.lock("staging", "bob") as again:
        assert again.took_over is None


def test_the_lock_is_released_when_the_block_raises(store: StateStore) -> None:
    with pytest.raises(RuntimeError, match="build failed"), store.lock("staging", "alice"):
        raise RuntimeError("build failed")
    assert store.locked("staging") is None


def test_environments_are_locked_separately(store: StateStore) -> None:
    with store.lock("staging", "alice"), store.lock("production", "bob") as lease:
        assert lease.environment == "production"


def test_attach_names_the_deployment_in_the_lock(store: StateStore) -> None:
    with store.lock("staging", "alice") as lease:
        run = store.begin("staging", "deploy", "v1", None, "alice")
        lease.attach(run)
        with pytest.raises(LockHeld, match=rf"\(deployment {run}\)"), store.lock("staging", "bob"):
            pass


def test_the_lease_is_renewed_while_held(store: StateStore) -> None:
    def held() -> LockInfo:
        found = store.locked("staging")
        assert found is not None
        return found

    with store.lock("staging", "alice", lease_seconds=0.6):
        first = held()
        deadline = time.monotonic() + WAIT
        while (renewed := held()).expires_at == first.expires_at:
            assert time.monotonic() < deadline, "the lease was never renewed"
            time.sleep(0.05)
        assert renewed.expires_at > first.expires_at
        assert (renewed.holder, renewed.since) == ("alice", first.since)


def test_a_lost_lease_is_reported(store: StateStore) -> None:
    with store.lock("staging", "alice") as lease:
        with store.engine.begin() as connection:  # someone else took it over
            connection.execute(sa.update(locks).values(holder="mallory@ci pid 7", token="x"))
        lease.attach(5)
        assert lease.lost
        with pytest.raises(OperationError, match=r"lost the lock on staging: .* by mallory@ci"):
            lease.check()
    held = store.locked("staging")
    assert held is not None
    assert held.holder == "mallory@ci pid 7"  # not ours to delete


def test_wait_takes_the_lock_once_the_holder_releases(
    store: StateStore, state_url: str | None, tmp_path: Path
) -> None:
    seen: queue.Queue[LockInfo] = queue.Queue()
    taken: queue.Queue[Lease] = queue.Queue()

    def waiter() -> None:
        with (
            StateStore.open(state_url, tmp_path) as other,
            other.lock("staging", "bob", wait=True, on_wait=seen.put) as lease,
        ):
            taken.put(lease)

    with ExitStack() as holding:
        holding.enter_context(store.lock("staging", "alice", deployment_id=7))
        thread = threading.Thread(target=waiter)
        thread.start()
        waited_for = seen.get(timeout=WAIT)
        assert (waited_for.holder, waited_for.deployment_id) == ("alice", 7)
        assert taken.empty()
    lease = taken.get(timeout=WAIT)
    thread.join(WAIT)
    assert (lease.holder, lease.took_over) == ("bob", None)


def test_two_processes_racing_for_the_lock_one_wins(
    state_url: str | None, store: StateStore, tmp_path: Path, holders: list[Holder]
) -> None:
    holders.extend(Holder(state_url, tmp_path, "staging", 30) for _ in range(3))
    for holder in holders:
        holder.go()
    answers = {holder.name: holder.line() for holder in holders}
    winners = [name for name, answer in answers.items() if answer == "won"]
    assert len(winners) == 1, answers
    [winner] = winners
    for name, answer in answers.items():
        if name != winner:
            assert answer.startswith(f"held staging is being deployed by {winner} since ")
    held = store.locked("staging")
    assert held is not None
    assert held.holder == winner
    for holder in holders:
        holder.finish()
    assert store.locked("staging") is None


def test_the_lease_of_a_killed_holder_is_taken_over(
    state_url: str | None, store: StateStore, tmp_path: Path, holders: list[Holder]
) -> None:
    killed = Holder(state_url, tmp_path, "staging", lease=0.5)
    holders.append(killed)
    killed.go()
    assert killed.line() == "won"
    os.kill(killed.process.pid, signal.SIGKILL)
    killed.process.wait()

    with store.lock("staging", default_holder(), wait=True) as lease:
        assert lease.took_over is not None
        assert (lease.took_over.holder, lease.took_over.deployment_id) == (killed.name, killed.run)
        held = store.locked("staging")
        assert held is not None
        assert held.holder == default_holder()
        [left] = store.unfinished("staging")
        assert left.id == killed.run
        assert store.mark_interrupted(left.id, f"took over a lock left by {killed.name}")
    assert store.unfinished("staging") == []


def test_default_holder_names_user_host_and_pid() -> None:
    assert re.fullmatch(rf".+@.+ pid {os.getpid()}", default_holder())
