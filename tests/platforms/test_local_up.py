"""`tiers up` runs the example's three tiers for real; `tiers down` leaves nothing behind."""

from __future__ import annotations

import json
import shutil
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import tiers

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "plyr"
PORTS = {"development": (8001, 5173), "staging": (8002, 5174), "production": (8003, 5175)}

pytest.importorskip("fastapi", reason="the example's dependencies are not installed")


@pytest.fixture
def project() -> Iterator[Path]:
    # PostgreSQL runs as an unprivileged user under root, so every directory on the way
    # to its data must be enterable: pytest's own temporary directories are not.
    top = Path(tempfile.mkdtemp(prefix="tiers-up-"))
    top.chmod(0o711)
    shutil.copytree(EXAMPLE, top / "plyr", ignore=shutil.ignore_patterns(".tiers", "data"))
    yield top / "plyr"
    tiers("down", cwd=top / "plyr")
    shutil.rmtree(top, ignore_errors=True)


def health(port: int, timeout: float = 30) -> dict[str, str]:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"http://localhost:{port}/health", timeout=3) as answer:
                return dict(json.loads(answer.read()))
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def ours(project: Path) -> list[str]:
    found = []
    for proc in Path("/proc").iterdir():
        try:
            line = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            where = str((proc / "cwd").readlink())
        except OSError:
            continue
        if str(project) in line or where.startswith(str(project)):
            found.append(line)
    return found


def gone(project: Path, keep: tuple[str, ...] = (), timeout: float = 15) -> list[str]:
    """Our processes still running after ``timeout`` (those matching ``keep`` aside)."""
    deadline = time.monotonic() + timeout
    while True:
        left = [line for line in ours(project) if not any(k in line for k in keep)]
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.2)


def test_up_serves_each_tier_with_its_own_backend_and_down_stops_all(project: Path) -> None:
    result = tiers("up", cwd=project)
    assert result.returncode == 0, result.stderr
    assert "staging: up  http://localhost:8002  http://localhost:5174" in result.stdout
    for environment, (api, web) in PORTS.items():
        answer = health(api)
        assert (answer["environment"], answer["status"]) == (environment, "ok")
        assert answer["migration_head"] == "0003"
        with urllib.request.urlopen(f"http://localhost:{web}/config.js", timeout=3) as page:
            assert f'window.PUBLIC_API_URL = "http://localhost:{api}";' in page.read().decode()
    again = tiers("up", "staging", cwd=project)  # idempotent
    assert again.returncode == 0, again.stderr
    report = json.loads(tiers("status", "--json", cwd=project).stdout)
    staging = next(e for e in report if e["environment"] == "staging")
    assert {p["name"] for p in staging["processes"]} == {
        "staging.backend.app",
        "staging.backend.worker",
    }
    assert staging["services"]["backend"]["health"]["namespace"] == "fm.plyr.stg"
    logs = tiers("logs", "staging", "backend.app", cwd=project)
    assert logs.returncode == 0, logs.stderr
    assert "backend.app | " in logs.stdout
    assert "Application startup complete" in logs.stdout
    missing = tiers("logs", "staging", "backend.web", cwd=project)
    assert missing.returncode == 2
    assert (
        "no process 'backend.web' in staging; known: backend.app, backend.worker" in missing.stderr
    )
    assert tiers("down", cwd=project).returncode == 0
    assert gone(project) == []


def test_dev_runs_the_local_tier_in_the_foreground_until_ctrl_c(project: Path) -> None:
    import signal
    import subprocess
    import sys

    dev = subprocess.Popen(
        [sys.executable, "-m", "tiers", "dev"],
        cwd=project,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert health(8001)["environment"] == "development"
        time.sleep(1)  # let a log line or two through
    finally:
        dev.send_signal(signal.SIGINT)
        out, err = dev.communicate(timeout=60)
    assert dev.returncode == 0, err
    assert "development: http://localhost:8001  http://localhost:5173  (Ctrl-C stops)" in out
    assert "backend.app" in out
    assert out.rstrip().endswith("development: stopped")
    assert gone(project, keep=("caddy", "tiers.platforms")) == []
