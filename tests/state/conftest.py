"""State stores on both real databases: SQLite in the test's directory, and a PostgreSQL
database of the test's own on the server at 127.0.0.1:5432 (or at
TIERS_TEST_POSTGRES_URL), dropped afterwards.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tiers.state import StateStore

BACKENDS = ["sqlite", "postgresql"]

# A deploy in another process: it records a deployment, says "ready RUN", takes the lock
# when it reads a line ("won", or "held MESSAGE"), and holds it until its stdin ends.
HOLDER = """
import sys
from pathlib import Path
from tiers.state import LockHeld, StateStore

url, project, environment, lease = sys.argv[1:]
store = StateStore.open(url or None, Path(project))
run = store.begin(environment, "deploy", "v-child", None, "child")
print("ready", run, flush=True)
sys.stdin.readline()
try:
    with store.lock(environment, f"child {run}", lease_seconds=float(lease), deployment_id=run):
        print("won", flush=True)
        sys.stdin.read()
except LockHeld as exc:
    print("held", exc, flush=True)
store.close()
"""


@pytest.fixture(params=BACKENDS)
def state_url(request: pytest.FixtureRequest) -> str | None:
    """None (SQLite in .tiers/state.db of the test's directory) or a PostgreSQL URL."""
    if request.param == "sqlite":
        return None
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
def store(state_url: str | None, tmp_path: Path) -> Iterator[StateStore]:
    with StateStore.open(state_url, tmp_path) as opened:
        yield opened


class Holder:
    """A HOLDER script running in a child process."""

    def __init__(self, url: str | None, project: Path, environment: str, lease: float) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", HOLDER, url or "", str(project), environment, str(lease)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        word, run = self.line().split()
        assert word == "ready"
        self.run = int(run)
        self.name = f"child {self.run}"

    def line(self) -> str:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            self.process.wait()
            assert self.process.stderr is not None
            pytest.fail(
                f"holder exited with {self.process.returncode}: {self.process.stderr.read()}"
            )
        return line.strip()

    def go(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write("go\n")
        self.process.stdin.flush()

    def finish(self) -> int:
        """Let it release the lock and end; its exit code."""
        _, stderr = self.process.communicate(timeout=60)
        assert self.process.returncode == 0, stderr
        return self.process.returncode


@pytest.fixture
def holders(tmp_path: Path) -> Iterator[list[Holder]]:
    """Holders started by the test (append them); any left running is killed at the end."""
    started: list[Holder] = []
    yield started
    for holder in started:
        if holder.process.poll() is None:
            holder.process.kill()
        holder.process.communicate()
