"""`tiers status` on a small project of its own: a real supervisor, Caddy and an app whose
health path answers whatever the test writes in its ``answer`` file."""

from __future__ import annotations

import json
import os
import shutil
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import tiers
from tests.pipeline.example import reserved_ports

APP = """
import http.server, os, pathlib

class Health(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        answer = pathlib.Path("answer").read_text()  # "CODE BODY"
        code, _, body = answer.partition(" ")
        self.send_response(int(code))
        self.end_headers()
        self.wfile.write(body.encode())

http.server.HTTPServer(("127.0.0.1", int(os.environ["PORT"])), Health).serve_forever()
"""
CONFIG = """
[project]
name = "mini"

[services.api]
health = "/health"
processes = {{ app = "python app.py" }}

[environments.development]
trigger = "local"
api = {{ platform = "local", url = "http://localhost:{port}" }}
"""


@pytest.fixture
def project(tmp_path: Path) -> Iterator[Path]:
    with reserved_ports(1) as (port,):
        project = tmp_path / "mini"
        project.mkdir()
        (project / "app.py").write_text(APP)
        (project / "answer").write_text("200 true")
        (project / "tiers.toml").write_text(CONFIG.format(port=port))
        try:
            yield project
        finally:
            tiers("down", cwd=project)


def status(project: Path) -> tuple[int, str, str]:
    result = tiers("status", cwd=project)
    return result.returncode, result.stdout, result.stderr


def test_any_2xx_health_answer_is_healthy_and_its_fields_are_shown(project: Path) -> None:
    assert tiers("up", cwd=project).returncode == 0
    url = json.loads(tiers("status", "--json", cwd=project).stdout)[0]["services"]["api"]["url"]
    code, out, _ = status(project)  # JSON true
    assert code == 0
    assert out.startswith("development: serving\n")
    assert f"  api {url}: HTTP 200\n" in out
    (project / "answer").write_text("200 all good")  # plain text
    assert status(project)[:2] == (0, out)
    (project / "answer").write_text('200 {"status": "ok", "version": "1.2"}')
    assert f"  api {url}: HTTP 200  status=ok version=1.2\n" in status(project)[1]
    report = json.loads(tiers("status", "--json", cwd=project).stdout)[0]
    assert report["services"]["api"] == {
        "url": url,
        "healthy": True,
        "answer": "HTTP 200",
        "health": {"status": "ok", "version": "1.2"},
    }


def test_a_tier_that_should_serve_and_does_not_exits_1(project: Path) -> None:
    assert tiers("up", cwd=project).returncode == 0
    (project / "answer").write_text('503 {"status": "degraded"}')
    code, out, err = status(project)
    assert code == 1
    assert "development: not serving: api HTTP 503\n" in out
    assert "HTTP 503  status=degraded" in out
    assert err == "error: development should serve and does not; `tiers up development`\n"
    supervisor = int((project / ".tiers/local/supervisor.pid").read_text())
    os.kill(supervisor, signal.SIGKILL)  # its app goes with it
    code, out, _ = status(project)
    assert code == 1
    assert "development: not serving: api does not answer (Connection refused)" in out
    assert tiers("down", cwd=project).returncode == 0
    code, out, _ = status(project)  # brought down on purpose: nothing should serve
    assert code == 0
    assert "development: not running\n" in out


def test_another_projects_ports_are_not_reported_as_ours(project: Path, tmp_path: Path) -> None:
    assert tiers("up", cwd=project).returncode == 0
    other = tmp_path / "other"
    other.mkdir()
    shutil.copy(project / "tiers.toml", other / "tiers.toml")  # the same URLs, never up
    code, out, _ = status(other)
    assert code == 0
    assert "development: not running\n" in out
    assert ": not served\n" in out
    assert "HTTP 200" not in out
    assert not (other / ".tiers").exists()  # asking changed nothing
