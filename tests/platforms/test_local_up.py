"""`tiers up` runs the example's three tiers for real; `tiers down` leaves nothing behind.

Each test runs a copy of the example on free ports of its own (``port(project, 8002)`` for
the example's 8002), so they run side by side and beside the example's own demo.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import tiers
from tests.examples.test_plyr_app import wav_bytes
from tests.pipeline.example import example_copy, port

PORTS = {"development": (8001, 5173), "staging": (8002, 5174), "production": (8003, 5175)}
BUCKETS = {"development": "audio-dev", "staging": "audio-staging", "production": "audio-prod"}

pytest.importorskip("fastapi", reason="the example's dependencies are not installed")


@pytest.fixture
def project() -> Iterator[Path]:
    """The example, every tier, outside git (so each runs its work tree)."""
    with example_copy("up", tuple(PORTS), commit=False) as project:
        yield project


def ports(project: Path, environment: str) -> tuple[int, int]:
    """The ports of the environment's backend and frontend in this copy."""
    api, web = PORTS[environment]
    return port(project, api), port(project, web)


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


def cors(api: int, origin: str) -> bool:
    """Whether the backend on ``api`` lets a page from ``origin`` read its answers."""
    request = urllib.request.Request(f"http://localhost:{api}/tracks", headers={"Origin": origin})
    with urllib.request.urlopen(request, timeout=3) as answer:
        return answer.headers.get("access-control-allow-origin") == origin


def psql(project: Path, environment: str, sql: str) -> list[str]:
    """Rows of ``sql`` in the environment's own PostgreSQL cluster."""
    from tiers.config import load
    from tiers.platforms.local.platform import LocalPlatform

    platform = LocalPlatform(load(project / "tiers.toml").config, project)
    found = platform.postgres(platform.config.environments[environment])
    assert found is not None
    cluster, db = found
    return cluster.psql(sql, db).splitlines()


def measured(api: int, track: int) -> float | None:
    with urllib.request.urlopen(f"http://localhost:{api}/tracks", timeout=3) as answer:
        tracks = {t["id"]: t for t in json.loads(answer.read())}
    value: float | None = tracks[track]["duration_seconds"]
    return value


def process(project: Path, name: str) -> dict[str, object]:
    report = json.loads(tiers("status", "--json", cwd=project).stdout)
    found = [p for env in report for p in env["processes"] if p["name"] == name]
    assert found, f"no process {name}"
    return dict(found[0])


def wait_for(probe: Callable[[], Any], timeout: float = 30) -> Any:
    """The first true value ``probe()`` returns within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not (value := probe()):
        assert time.monotonic() < deadline, "gave up waiting"
        time.sleep(0.2)
    return value


def processes() -> Iterator[tuple[int, str, str]]:
    """(pid, command line, working directory) of every process we can read."""
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue  # self, thread-self, and the kernel's files
        try:
            line = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            where = str((proc / "cwd").readlink())
        except OSError:
            continue
        yield int(proc.name), line, where


def pids(project: Path, command: str) -> list[int]:
    """The Python processes of the project whose command line holds ``command``."""
    return [
        pid
        for pid, line, where in processes()
        if line.startswith("python") and command in line and where.startswith(str(project))
    ]


def ours(project: Path) -> list[str]:
    return [
        line
        for _, line, where in processes()
        if str(project) in line or where.startswith(str(project))
    ]


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
    assert (
        "staging: up, from the work tree  http://localhost:{}  http://localhost:{}".format(
            *ports(project, "staging")
        )
        in result.stdout
    )
    for environment in PORTS:
        api, web = ports(project, environment)
        answer = health(api)
        assert (answer["environment"], answer["status"]) == (environment, "ok")
        assert answer["migration_head"] == "0003"
        with urllib.request.urlopen(f"http://localhost:{web}/config.js", timeout=3) as page:
            assert f'window.PUBLIC_API_URL = "http://localhost:{api}";' in page.read().decode()
        # the browser lets each frontend call its own backend, and no other
        for other in PORTS:
            other_api, _ = ports(project, other)
            allowed = cors(other_api, f"http://localhost:{web}")
            assert allowed == (other == environment), (environment, other)
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


def test_a_track_uploaded_to_staging_lives_in_staging_only(project: Path) -> None:
    import httpx

    assert tiers("up", cwd=project).returncode == 0
    audio = wav_bytes(1.5)
    answer = httpx.post(
        f"http://localhost:{port(project, 8002)}/tracks",
        data={"title": "staging only"},
        files={"audio": ("take.wav", audio, "audio/wav")},
        timeout=10,
    )
    assert answer.status_code == 201, answer.text
    track = answer.json()
    assert track["uri"] == f"at://fm.plyr.stg/track/{track['id']}"
    for environment in PORTS:
        api, _ = ports(project, environment)
        titles = [t["title"] for t in httpx.get(f"http://localhost:{api}/tracks").json()]
        rows = psql(project, environment, "SELECT title FROM tracks")
        bucket = project / ".tiers/local/environments" / environment / "buckets"
        files = [f.read_bytes() for f in (bucket / BUCKETS[environment]).iterdir()]
        if environment == "staging":
            assert (titles, rows, files) == (["staging only"], ["staging only"], [audio])
        else:
            assert (titles, rows, files) == ([], [], []), environment
    # staging's worker, on staging's redis, measured it
    assert wait_for(lambda: measured(port(project, 8002), track["id"])) == 1.5


def test_a_crashed_worker_is_restarted_and_a_killed_supervisor_recovered(project: Path) -> None:
    assert tiers("up", "staging", cwd=project).returncode == 0
    worker = process(project, "staging.backend.worker")
    (crashing,) = pids(project, "plyr_backend.worker")
    os.kill(crashing, signal.SIGKILL)
    restarted = wait_for(
        lambda: (
            (p := process(project, "staging.backend.worker"))["restarts"] == 1
            and p["state"] == "running"
            and p
        )
    )
    assert restarted["pid"] != worker["pid"]
    assert health(port(project, 8002))["environment"] == "staging"

    supervisor = int((project / ".tiers/local/supervisor.pid").read_text())
    os.kill(supervisor, signal.SIGKILL)
    assert gone(project, keep=("caddy", "redis-server", "postgres")) == []  # no orphans
    status = tiers("status", cwd=project)
    assert "the supervisor is not running" in status.stdout
    assert "staging.backend.app" not in status.stdout
    again = tiers("up", "staging", cwd=project)
    assert again.returncode == 0, again.stderr
    assert health(port(project, 8002))["environment"] == "staging"
    assert len(pids(project, "uvicorn")) == 1
    assert len(pids(project, "plyr_backend.worker")) == 1


def environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(item.decode().partition("=")[::2] for item in raw if item)


def test_processes_get_what_tiers_gives_them_not_the_callers_shell(project: Path) -> None:
    edit(
        project,
        (
            'release_command = "python -m alembic upgrade head"',
            'release_command = "env > release.env && python -m alembic upgrade head"',
        ),
    )
    result = tiers("up", "staging", cwd=project, env={"SOME_CALLER_SECRET": "x"})
    assert result.returncode == 0, result.stderr
    (app,) = pids(project, "uvicorn")
    given = environ(app)
    assert "SOME_CALLER_SECRET" not in given
    assert (given["TIERS_ENVIRONMENT"], given["ATPROTO_APP_NAMESPACE"]) == (
        "staging",
        "fm.plyr.stg",
    )
    assert given["PORT"] and given["PATH"] and given["HOME"]
    release = dict(
        line.partition("=")[::2]
        for line in (project / "backend/release.env").read_text().splitlines()
    )
    assert "SOME_CALLER_SECRET" not in release
    assert release["DOCKET_URL"] == f"redis://127.0.0.1:{port(project, 6381)}/0"


def test_dev_runs_the_local_tier_in_the_foreground_until_ctrl_c(project: Path) -> None:
    import subprocess

    logs = project / ".tiers/local/logs"
    logs.mkdir(parents=True)
    (logs / "development.backend.app.log").write_text("a line from an earlier run\n")
    dev = subprocess.Popen(
        [sys.executable, "-m", "tiers", "dev"],
        cwd=project,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # a group of its own, as a terminal gives a command
    )
    try:
        assert health(port(project, 8001))["environment"] == "development"
        time.sleep(1)  # let a log line or two through
    finally:
        os.killpg(dev.pid, signal.SIGINT)  # Ctrl-C: the terminal signals the whole group
        out, err = dev.communicate(timeout=60)
    assert dev.returncode == 0, err
    urls = "http://localhost:{}  http://localhost:{}".format(*ports(project, "development"))
    assert f"development: {urls}  (Ctrl-C stops)" in out
    assert "backend.app" in out and "Application startup complete" in out
    assert "a line from an earlier run" not in out  # only what this run wrote
    assert out.rstrip().endswith("development: stopped")
    assert gone(project) == []  # no supervisor, no Caddy, no server left


# -- faults: each refused with the environment, the part and the cause ---------------------


def edit(project: Path, *pairs: tuple[str, str]) -> None:
    path = project / "tiers.toml"
    text = path.read_text()
    for old, new in pairs:
        assert old in text, old
        text = text.replace(old, new)
    path.write_text(text)


def test_a_taken_port_is_named_before_anything_starts(project: Path) -> None:
    with socket.socket() as squatter:
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        squatter.bind(("127.0.0.1", web := port(project, 5174)))
        squatter.listen()
        result = tiers("up", "staging", cwd=project)
    assert result.returncode == 1
    assert (
        f"staging: frontend: port {web} (http://localhost:{web}) is taken by another process; "
        "stop it or give environments.staging.frontend.url another port"
    ) in result.stderr
    assert gone(project, keep=("caddy",), timeout=0) == []


def test_a_missing_redis_server_names_the_package(project: Path) -> None:
    result = tiers("up", "staging", cwd=project, env={"PATH": str(Path(sys.executable).parent)})
    assert result.returncode == 1
    assert (
        "staging: staging's redis: redis-server not found on PATH; "
        "install it: apt-get install redis-server"
    ) in result.stderr
    assert "staging did not start" in result.stderr


def test_an_unreachable_postgresql_is_named_with_the_key_to_fix(project: Path) -> None:
    edit(
        project,
        (
            'database = { provider = "local", engine = "postgresql", name = "plyr-stg", '
            f'url = "postgresql://postgres@127.0.0.1:{port(project, 5434)}/plyr-stg" }}',
            'database = { provider = "neon", name = "plyr-stg", '
            'url = "postgresql://postgres@127.0.0.1:1/plyr-stg" }',
        ),
    )
    result = tiers("up", "staging", cwd=project)
    assert result.returncode == 1
    assert (
        "staging: the database at 127.0.0.1:1 is unreachable (Connection refused); "
        "start it or fix environments.staging.database.url"
    ) in result.stderr


def test_a_crash_on_start_shows_its_log_and_other_tiers_keep_running(project: Path) -> None:
    # the worker of the deployed tiers dies at start; development runs its dev commands,
    # on SQLite (a service declaring SQLite gets a file in its environment's state)
    edit(
        project,
        (
            'worker = "PYTHONPATH=src python -m plyr_backend.worker" }\ndev',
            'worker = "echo cannot reach the queue; exit 3" }\ndev',
        ),
        (
            'database = { provider = "local", engine = "postgresql", name = "plyr-dev", '
            f'url = "postgresql://postgres@127.0.0.1:{port(project, 5433)}/plyr-dev" }}',
            'database = { provider = "local", engine = "sqlite", name = "plyr-dev", '
            'url = "sqlite:///plyr-dev.sqlite3" }',
        ),
    )
    result = tiers("up", "development", "staging", cwd=project)
    assert result.returncode == 1
    assert (
        "development: up, from the work tree  http://localhost:{}  http://localhost:{}".format(
            *ports(project, "development")
        )
        in result.stdout
    )
    assert (
        "staging: backend.worker exited with code 3 on start "
        "(echo cannot reach the queue; exit 3); its log ends:"
    ) in result.stderr
    assert "error: cannot reach the queue" in result.stderr
    assert "staging did not start (see above)" in result.stderr
    answer = health(port(project, 8001))
    assert (answer["environment"], answer["migration_head"]) == ("development", "0003")
    database = project / ".tiers/local/environments/development/databases/plyr-dev.sqlite3"
    assert database.stat().st_size > 0
    report = json.loads(tiers("status", "--json", cwd=project).stdout)
    running = {p["name"] for env in report for p in env["processes"]}
    assert running == {"development.backend.app", "development.backend.worker"}


def test_a_broken_tiers_toml_is_refused_with_its_place(project: Path) -> None:
    edit(project, ('[project]\nname = "plyr"', '[project]\nname = "plyr'))
    result = tiers("up", cwd=project)
    assert result.returncode == 2
    assert "tiers.toml:7:8 invalid TOML: this string is not closed on its line" in result.stderr
    assert ours(project) == []
