"""The supervisor runs real processes, restarts them by policy and leaves none behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tiers.errors import PlatformError
from tiers.platforms.local.supervisor import SupervisorClient, spawn

SLEEPER = f"{sys.executable} -c \"import time; print('up', flush=True); time.sleep(600)\""
Running = tuple[subprocess.Popen[bytes], SupervisorClient]
CRASHER = f"{sys.executable} -c \"print('boot', flush=True); raise SystemExit(3)\""


def eventually(check: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return check()


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie waiting for its parent counts as gone
    status = Path(f"/proc/{pid}/status").read_text() if Path(f"/proc/{pid}").exists() else ""
    return "State:\tZ" not in status


@pytest.fixture
def supervisor(tmp_path: Path) -> Iterator[Running]:
    root = tmp_path / "state"
    popen = spawn(root)
    yield popen, SupervisorClient(root / "supervisor.sock")
    if popen.poll() is None:
        popen.terminate()
        popen.wait(20)


def test_a_process_runs_and_its_output_is_logged(supervisor: Running) -> None:
    _, client = supervisor
    started = client.start("staging.app", SLEEPER, cwd=".", env={}, restart="always")
    assert started["state"] == "running"
    assert eventually(lambda: "up" in client.logs("staging.app"))
    (listed,) = client.processes()
    assert listed["name"] == "staging.app"
    assert listed["pid"] == started["pid"]


def test_a_running_process_reports_how_long_it_has_been_up(supervisor: Running) -> None:
    _, client = supervisor
    client.start("staging.app", SLEEPER, cwd=".", env={}, restart="always")
    assert eventually(lambda: client.processes()[0]["uptime"] > 0.2)
    first = client.processes()[0]["uptime"]
    assert eventually(lambda: client.processes()[0]["uptime"] > first)
    assert client.stop("staging.app")["uptime"] is None


def test_the_environment_reaches_the_process(supervisor: Running, tmp_path: Path) -> None:
    _, client = supervisor
    command = f"{sys.executable} -c \"import os; print(os.environ['TIERS_ENVIRONMENT'])\""
    client.start(
        "env.check",
        command,
        cwd=str(tmp_path),
        env={"TIERS_ENVIRONMENT": "staging"},
        restart="never",
    )
    assert eventually(lambda: client.logs("env.check") == ["staging"])


def test_a_crashing_process_is_restarted_with_a_note(supervisor: Running) -> None:
    _, client = supervisor
    client.start("staging.worker", CRASHER, cwd=".", env={}, restart="always")
    assert eventually(lambda: client.processes()[0]["restarts"] >= 2)
    lines = client.logs("staging.worker")
    assert lines.count("boot") >= 2
    assert any("exited with 3; restarting" in line for line in lines)


def test_on_failure_leaves_a_clean_exit_alone(supervisor: Running) -> None:
    _, client = supervisor
    done = f"{sys.executable} -c \"print('done')\""
    client.start("once", done, cwd=".", env={}, restart="on-failure")
    assert eventually(lambda: client.processes()[0]["state"] == "exited")
    time.sleep(1)
    (info,) = client.processes()
    assert (info["restarts"], info["exit_code"]) == (0, 0)


def test_stop_ends_the_whole_process_group(supervisor: Running, tmp_path: Path) -> None:
    _, client = supervisor
    pidfile = tmp_path / "grandchild.pid"
    command = f"sleep 600 & echo $! > {pidfile}; wait"
    client.start("group", command, cwd=".", env={}, restart="always")
    assert eventually(lambda: pidfile.exists() and pidfile.read_text().strip() != "")
    grandchild = int(pidfile.read_text())
    stopped = client.stop("group")
    assert stopped["state"] == "stopped"
    assert client.processes() == []
    assert eventually(lambda: not alive(grandchild))


def test_killing_the_supervisor_takes_its_children_with_it(supervisor: Running) -> None:
    popen, client = supervisor
    pid = client.start("orphan?", SLEEPER, cwd=".", env={}, restart="always")["pid"]
    time.sleep(0.3)  # it must outlive the request that started it
    assert alive(pid)
    popen.send_signal(signal.SIGKILL)
    popen.wait()
    assert eventually(lambda: not alive(pid))
    assert not client.alive()


def test_sigterm_stops_everything_and_removes_the_socket(supervisor: Running) -> None:
    popen, client = supervisor
    pid = client.start("app", SLEEPER, cwd=".", env={}, restart="always")["pid"]
    popen.terminate()
    assert popen.wait(20) == 0 or popen.returncode is not None
    assert not alive(pid)
    assert not client.path.exists()


def test_no_supervisor_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(PlatformError, match="does not answer"):
        SupervisorClient(tmp_path / "supervisor.sock").processes()
