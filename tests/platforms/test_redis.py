"""Each environment's redis-server is real, keeps its data, and fails with clear messages."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tiers.errors import PlatformError, UsageError
from tiers.platforms.local import RedisServer, free_port

Make = Callable[[str], RedisServer]


@pytest.fixture
def make(tmp_path: Path, no_leftovers: None) -> Iterator[Make]:
    """A RedisServer per environment name, on a free port, stopped after the test."""
    made: list[RedisServer] = []

    def new(name: str) -> RedisServer:
        server = RedisServer(tmp_path / name, free_port(), name)
        made.append(server)
        return server

    yield new
    for server in made:
        server.stop()


def call(server: RedisServer, *args: str) -> bytes:
    """Send one command in RESP and return the raw reply."""
    parts = [f"*{len(args)}\r\n"] + [f"${len(a.encode())}\r\n{a}\r\n" for a in args]
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall("".join(parts).encode())
        return sock.recv(4096)


def eventually(check: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.01)
    return True


def test_started_it_answers_and_keeps_data_across_a_restart(make: Make) -> None:
    server = make("staging")
    server.start()
    assert server.running()
    assert server.ping()
    assert server.url == f"redis://127.0.0.1:{server.port}/0"
    assert call(server, "SET", "track:1", "intro") == b"+OK\r\n"

    server.stop()
    assert not server.running()
    assert not server.ping()

    server.start()
    assert call(server, "GET", "track:1") == b"$5\r\nintro\r\n"


def test_start_and_stop_are_idempotent(make: Make) -> None:
    server = make("staging")
    server.start()
    pid = server.pid()
    server.start()
    assert server.pid() == pid
    server.stop()
    server.stop()
    assert server.pid() is None
    assert not server.pid_file.exists()


def test_a_taken_port_is_refused(make: Make) -> None:
    server = make("staging")
    with socket.socket() as other:
        other.bind(("127.0.0.1", server.port))
        other.listen()
        with pytest.raises(PlatformError) as caught:
            server.start()
    assert str(caught.value) == (
        f"port {server.port} for staging's redis is taken by another process; "
        "choose another port in tiers.toml"
    )
    assert not server.running()


def test_a_missing_binary_names_the_package(
    make: Make, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    empty = tmp_path / "empty-path"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    with pytest.raises(PlatformError, match="apt-get install redis-server") as caught:
        make("staging").start()
    assert "redis-server not found on PATH" in str(caught.value)


def test_a_server_that_dies_at_start_shows_its_log(make: Make) -> None:
    server = make("staging")
    server.start()
    server.stop()
    (manifest,) = (server.dir / "appendonlydir").glob("*.manifest")
    manifest.write_text("this is not a manifest\n")
    with pytest.raises(PlatformError, match="staging's redis-server exited at start") as caught:
        server.start()
    assert "manifest" in str(caught.value).lower()
    assert str(server.log) in str(caught.value)
    assert not server.pid_file.exists()


def test_a_killed_server_is_noticed_and_started_again(make: Make) -> None:
    server = make("staging")
    server.start()
    call(server, "SET", "plays", "7")
    pid = server.pid()
    assert pid is not None
    os.kill(pid, signal.SIGKILL)

    assert eventually(lambda: not server.running())
    server.start()
    assert server.pid() not in (None, pid)
    assert call(server, "GET", "plays") == b"$1\r\n7\r\n"


def test_a_pid_file_naming_another_program_is_stale(make: Make) -> None:
    server = make("staging")
    with subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"]) as other:
        try:
            server.dir.mkdir(parents=True)
            server.pid_file.write_text(f"{other.pid}\n")
            assert not server.running()
            assert not server.pid_file.exists()
            server.start()
            assert server.pid() != other.pid
            server.stop()
            assert other.poll() is None, "stop must not touch a process that is not ours"
        finally:
            other.kill()


def test_two_environments_hold_their_own_data(make: Make) -> None:
    staging, production = make("staging"), make("production")
    staging.start()
    production.start()
    call(staging, "SET", "where", "staging")
    call(production, "SET", "where", "production")
    call(staging, "SET", "only", "here")

    assert call(staging, "GET", "where") == b"$7\r\nstaging\r\n"
    assert call(production, "GET", "where") == b"$10\r\nproduction\r\n"
    assert call(production, "GET", "only") == b"$-1\r\n"
    assert staging.dir != production.dir


@pytest.mark.parametrize("port", [0, -1, 70000])
def test_a_port_out_of_range_is_bad_input(tmp_path: Path, port: int) -> None:
    with pytest.raises(UsageError, match=f"port {port} is not a TCP port"):
        RedisServer(tmp_path, port, "staging")
