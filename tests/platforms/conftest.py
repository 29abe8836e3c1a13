"""Data services in tests: no server outlives its test, and root's servers can reach it."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

SERVERS = ("redis-server", "postgres")


def servers_under(path: Path) -> list[str]:
    """Live redis-server and postgres processes working in or started with ``path``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            name = (entry / "comm").read_text().strip()
            where = str((entry / "cwd").readlink())
            state = (entry / "stat").read_text().rpartition(")")[2].split()[0]
        except (OSError, UnicodeDecodeError):
            continue
        ours = str(path) in command or where.startswith(str(path))
        if ours and state != "Z" and name in SERVERS:
            found.append(f"{entry.name}: {command}")
    return found


def assert_none_left(path: Path) -> None:
    """Fail when a server still runs under ``path`` (and end it)."""
    left = servers_under(path.resolve())
    for line in left:
        os.kill(int(line.split(":")[0]), signal.SIGKILL)
    assert not left, "servers left running:\n" + "\n".join(left)


@contextlib.contextmanager
def server_dir(fallback: Path) -> Iterator[Path]:
    """A directory for servers' state that PostgreSQL can enter, checked for leftovers.

    As root, PostgreSQL runs as an unprivileged user, which cannot enter pytest's 0700
    directories (and another pytest session resets their modes), so root's tests get a
    directory of their own under the temporary directory, removed afterwards.
    """
    if os.geteuid() != 0:
        yield fallback
        assert_none_left(fallback)
        return
    path = Path(tempfile.mkdtemp(prefix="tiers-test-"))
    path.chmod(0o711)
    try:
        yield path
        assert_none_left(path)
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def no_leftovers(tmp_path: Path) -> Iterator[None]:
    """Fail a test that leaves a server running under tmp_path (and end that server)."""
    yield
    assert_none_left(tmp_path)


@pytest.fixture
def pg_root(tmp_path: Path) -> Iterator[Path]:
    """This test's directory for PostgreSQL clusters (see ``server_dir``)."""
    with server_dir(tmp_path) as path:
        yield path


@pytest.fixture(scope="module")
def pg_module_root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A directory for PostgreSQL shared by one test module (see ``server_dir``)."""
    with server_dir(tmp_path_factory.mktemp("pg")) as path:
        yield path
