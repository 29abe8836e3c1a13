"""`tiers access doctor` on the running example, and the gate the local platform runs.

The example's staging (protected: one-time PIN, @plyr.fm, /health, /docs, /openapi.json
and the frontend's manifest and icons public) brought up for real: Caddy, the supervised
`tiers gate serve`, the backend checking the gate's assertion on its own port.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from tests.conftest import tiers
from tests.examples.test_plyr_app import wav_bytes
from tests.pipeline.example import example_copy, git, port
from tiers.gate.doctor import GUARDED, OPEN, PAGE, Probe, send

pytest.importorskip("fastapi", reason="the example's dependencies are not installed")


@pytest.fixture
def staging() -> Iterator[Path]:
    with example_copy("doctor", ("staging",), access=True) as project:
        yield project


def doctor(project: Path, *args: str) -> tuple[int, list[str]]:
    done = tiers("access", "doctor", "staging", *args, cwd=project)
    return done.returncode, done.stdout.splitlines() + done.stderr.splitlines()


def sign_in(project: Path, web: str) -> httpx.Client:
    """A browser that asked for a PIN for ana@plyr.fm and typed it in."""
    browser = httpx.Client(base_url=web, timeout=30)
    sent = browser.post("/.tiers/access/login", data={"email": "ana@plyr.fm", "return": "/"})
    assert sent.status_code == 303, sent.text
    mailbox = tiers("access", "mailbox", "staging", "--json", cwd=project)
    assert mailbox.returncode == 0, mailbox.stderr
    code = json.loads(mailbox.stdout)[-1]["code"]
    entered = browser.post("/.tiers/access/code", data={"code": code})
    assert entered.status_code == 303, entered.text
    return browser


def test_the_running_example_passes_the_doctor_and_keeps_its_gate_through_a_deploy(
    staging: Path,
) -> None:
    up = tiers("up", "staging", cwd=staging)
    assert up.returncode == 0, up.stderr
    assert "access.protect" not in up.stderr  # enforced here: nothing to warn about
    api = f"http://localhost:{port(staging, 8002)}"
    web = f"http://localhost:{port(staging, 5174)}"

    code, lines = doctor(staging)
    assert code == 0, "\n".join(lines)
    assert f"pass  GET {api}/ (protected host root): 401" in lines
    assert f"pass  POST {api}/ (an anonymous write): 401" in lines
    assert f"pass  GET {api}/health (bypass localhost:{port(staging, 8002)}/health): 200" in lines
    assert f"pass  GET {web}/manifest.webmanifest (bypass " in "\n".join(lines)
    assert f"pass  GET {web}/.tiers/access/login (the gate's login page): 200" in lines
    direct = [line for line in lines if "backend's own port" in line]
    assert len(direct) == 2 and all(line.startswith("pass") for line in direct)
    assert all(": 401" in line for line in direct)  # the app answers, and refuses
    assert lines[-1].startswith("staging: all ") and lines[-1].endswith(" probes pass")
    # around the gate, on the app's own port: only its public paths, never a disguised one
    own = direct[0].split()[2].rsplit("/", 1)[0]
    assert httpx.get(f"{own}/health").status_code == 200
    for sneaky in ("/tracks", "/health/../tracks", "/docs/%2e%2e/tracks", "/health;/tracks"):
        assert httpx.get(f"{own}{sneaky}").status_code == 401, sneaky
    as_json = json.loads(tiers("access", "doctor", "staging", "--json", cwd=staging).stdout)
    assert as_json["ok"] is True and {p["ok"] for p in as_json["probes"]} == {True}

    # what a user sees: anonymous requests stop at the door, public paths stay public
    assert httpx.get(f"{api}/tracks").status_code == 401
    page = httpx.get(f"{web}/", headers={"Accept": "text/html"})
    assert page.status_code == 302
    assert page.headers["location"].startswith("/.tiers/access/login?return=")
    upload = httpx.post(
        f"{api}/tracks",
        data={"title": "anonymous"},
        files={"audio": ("take.wav", wav_bytes(0.5), "audio/wav")},
    )
    assert upload.status_code == 401
    for public in (f"{api}/health", f"{api}/docs", f"{api}/openapi.json", f"{web}/icons/icon.svg"):
        assert httpx.get(public).status_code == 200, public

    # signed in, through Caddy: the backend sees the gate's assertion and lets it in
    browser = sign_in(staging, web)
    assert browser.get(f"{api}/tracks").status_code == 200
    made = browser.post(
        f"{api}/tracks",
        data={"title": "team only"},
        files={"audio": ("take.wav", wav_bytes(0.5), "audio/wav")},
    )
    assert made.status_code == 201, made.text

    status = json.loads(tiers("status", "--json", cwd=staging).stdout)
    (env,) = status
    assert env["gate"]["state"] == "running" and env["gate"]["healthy"] is True
    shown = tiers("status", cwd=staging).stdout
    gate = env["gate"]
    assert (
        f"  access gate on {gate['address']} (/verify on {gate['verify']}): running, answers"
        in shown
    )

    # a deploy switches the backend; the gate stays in front, the session still works
    main = staging / "backend" / "src" / "plyr_backend" / "main.py"
    main.write_text(main.read_text() + "\n# a second release\n")
    git(staging, "add", "-A")
    git(staging, "commit", "-q", "-m", "second")
    deployed = tiers("deploy", "staging", cwd=staging)
    assert deployed.returncode == 0, deployed.stderr
    code, lines = doctor(staging)
    assert code == 0, "\n".join(lines)
    assert httpx.get(f"{api}/tracks").status_code == 401
    assert browser.get(f"{api}/tracks").status_code == 200
    browser.close()


def test_a_gate_that_stops_closes_the_door_and_up_brings_it_back(staging: Path) -> None:
    assert tiers("up", "staging", cwd=staging).returncode == 0
    api = f"http://localhost:{port(staging, 8002)}"
    from tiers.config import load
    from tiers.platforms.local.platform import LocalPlatform

    platform = LocalPlatform(load(staging / "tiers.toml").config, staging)
    platform.supervisor.stop("staging.gate")
    for path in ("/tracks", "/health"):  # after Caddy waited for the gate in vain
        assert httpx.get(f"{api}{path}", timeout=30).status_code == 502, path
    status = tiers("status", cwd=staging)
    assert status.returncode == 1
    assert "staging: not serving: the access gate does not answer" in status.stdout
    assert tiers("up", "staging", cwd=staging).returncode == 0
    assert httpx.get(f"{api}/health").status_code == 200
    assert httpx.get(f"{api}/tracks").status_code == 401

    # new rules in tiers.toml: `tiers up` starts the gate again, which reads them; the
    # requests that come while it starts wait for it (a client that never retries sees
    # no 502)
    web = f"localhost:{port(staging, 5174)}"
    assert httpx.get(f"http://{web}/config.js").status_code == 401
    config = staging / "tiers.toml"
    config.write_text(config.read_text().replace("bypass = [", f'bypass = [\n  "{web}/config.js",'))
    with answers(f"{api}/health") as seen:
        assert tiers("up", "staging", cwd=staging).returncode == 0
    assert seen and set(seen) == {200}, seen
    assert httpx.get(f"http://{web}/config.js").status_code == 200


@contextlib.contextmanager
def answers(url: str) -> Iterator[list[int]]:
    """The status of each GET of ``url``, one after another on a connection of their own
    (none retried), until the block ends."""
    seen: list[int] = []
    done = threading.Event()

    def ask() -> None:
        transport = httpx.HTTPTransport(retries=0)
        with httpx.Client(transport=transport, timeout=30) as client:
            while not done.is_set():
                try:
                    seen.append(client.get(url, headers={"Connection": "close"}).status_code)
                except httpx.HTTPError:
                    seen.append(0)
                time.sleep(0.02)

    asker = threading.Thread(target=ask, daemon=True)
    asker.start()
    try:
        yield seen
    finally:
        done.set()
        asker.join(timeout=60)


@pytest.fixture
def open_app() -> Iterator[str]:
    """An app with no gate in front: it answers everything with 200."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_a_probe_says_what_was_wrong(open_app: str) -> None:
    guarded = send(Probe("protected host root", "GET", f"{open_app}/", GUARDED, {}))
    assert (guarded.ok, guarded.line()) == (
        False,
        f"FAIL  GET {open_app}/ (protected host root): 200: the app answered without login",
    )
    assert send(Probe("bypass /health", "GET", f"{open_app}/health", OPEN, {})).ok
    page = send(Probe("the gate's login page", "GET", "http://127.0.0.1:9/", PAGE, {}))
    assert not page.ok and "no answer" in page.said
