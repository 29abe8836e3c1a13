"""Caddy serves sites over real sockets and switches upstreams without losing a request."""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tiers.errors import PlatformError
from tiers.platforms.local.caddy import Caddy, Site
from tiers.platforms.local.ports import free_port

Upstream = Callable[[str], str]


@pytest.fixture
def caddy(tmp_path: Path) -> Iterator[Caddy]:
    instance = Caddy(tmp_path / "caddy", free_port())
    instance.start()
    yield instance
    instance.stop()


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    """Start a keep-alive HTTP server answering its own name; returns its address."""
    servers: list[tuple[ThreadingHTTPServer, threading.Thread]] = []

    def start(name: str) -> str:
        server = ThreadingHTTPServer(("127.0.0.1", 0), _answering(name))
        server.daemon_threads = True
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        servers.append((server, thread))
        return f"127.0.0.1:{server.server_address[1]}"

    yield start
    for server, thread in servers:
        server.shutdown()
        server.server_close()
        thread.join(5)


def _answering(name: str) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as real backends do

        def do_GET(self) -> None:
            body = name.encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    return Handler


def get(port: int, path: str = "/") -> tuple[int, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read().decode()
    finally:
        conn.close()


def test_a_site_proxies_to_its_upstream(caddy: Caddy, upstream: Upstream) -> None:
    port = free_port()
    address = upstream("blue")
    caddy.set_site("staging", port, upstream=address)
    assert get(port) == (200, "blue")
    assert caddy.sites() == {"staging": Site(port, upstream=address)}


def test_a_static_site_serves_files_and_index_for_app_paths(caddy: Caddy, tmp_path: Path) -> None:
    build = tmp_path / "build"
    (build / "assets").mkdir(parents=True)
    (build / "index.html").write_text("<h1>staging</h1>")
    (build / "assets" / "app.js").write_text("console.log(1)")
    port = free_port()
    caddy.set_site("staging-web", port, root_dir=build)
    assert get(port) == (200, "<h1>staging</h1>")
    assert get(port, "/assets/app.js") == (200, "console.log(1)")
    assert get(port, "/tracks/42") == (200, "<h1>staging</h1>")
    assert caddy.sites()["staging-web"] == Site(port, root_dir=build)


def test_a_new_directory_is_served_at_once(caddy: Caddy, tmp_path: Path) -> None:
    old, new = tmp_path / "v1", tmp_path / "v2"
    for directory in (old, new):
        directory.mkdir()
        (directory / "index.html").write_text(directory.name)
    port = free_port()
    caddy.set_site("web", port, root_dir=old)
    assert get(port) == (200, "v1")
    caddy.set_site("web", port, root_dir=new)
    assert get(port) == (200, "v2")


def test_switch_upstream_moves_traffic(caddy: Caddy, upstream: Upstream) -> None:
    port = free_port()
    blue, green = upstream("blue"), upstream("green")
    caddy.set_site("staging", port, upstream=blue)
    caddy.switch_upstream("staging", green)
    assert get(port) == (200, "green")
    assert caddy.sites()["staging"].upstream == green


def test_a_site_can_become_static_and_be_removed(
    caddy: Caddy, upstream: Upstream, tmp_path: Path
) -> None:
    (tmp_path / "index.html").write_text("files")
    port = free_port()
    caddy.set_site("dev", port, upstream=upstream("app"))
    caddy.set_site("dev", port, root_dir=tmp_path)
    assert get(port) == (200, "files")
    caddy.remove_site("dev")
    caddy.remove_site("dev")
    assert caddy.sites() == {}
    with pytest.raises(ConnectionRefusedError):
        get(port)


def test_switching_a_site_that_does_not_exist_is_refused(caddy: Caddy) -> None:
    with pytest.raises(PlatformError, match="no proxy site 'nowhere'"):
        caddy.switch_upstream("nowhere", "127.0.0.1:9")


def test_a_request_that_cannot_dial_waits_for_the_switch(caddy: Caddy, upstream: Upstream) -> None:
    port, dead = free_port(), free_port()
    caddy.set_site("staging", port, upstream=f"127.0.0.1:{dead}")
    answer: list[tuple[int, str]] = []
    request = threading.Thread(target=lambda: answer.append(get(port)))
    request.start()
    time.sleep(0.3)
    caddy.switch_upstream("staging", upstream("green"))
    request.join(10)
    assert answer == [(200, "green")]


def test_what_stands_before_the_proxy_is_kept(caddy: Caddy, upstream: Upstream) -> None:
    port = free_port()
    caddy.set_site("staging", port, upstream=upstream("blue"))
    gate = {"handler": "headers", "response": {"set": {"X-Gate": ["checked"]}}}
    admin = http.client.HTTPConnection("127.0.0.1", caddy.admin_port, timeout=10)
    try:
        headers = {"Content-Type": "application/json"}
        admin.request("PUT", "/id/tiers-route-staging/handle/0", json.dumps(gate), headers)
        assert admin.getresponse().status == 200
    finally:
        admin.close()
    moved = free_port()
    caddy.set_site("staging", moved, upstream=upstream("green"))
    conn = http.client.HTTPConnection("127.0.0.1", moved, timeout=10)
    try:
        conn.request("GET", "/")
        response = conn.getresponse()
        assert (response.read(), response.getheader("X-Gate")) == (b"green", "checked")
    finally:
        conn.close()


@dataclass
class Load:
    sent: int = 0
    failures: list[str] = field(default_factory=list)
    answers: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)


def _client(port: int, until: float, budget: int, load: Load) -> None:
    """One keep-alive client that never retries: every error is a failed request."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        for _ in range(budget):
            if time.monotonic() >= until:
                return
            try:
                conn.request("GET", "/")
                response = conn.getresponse()
                outcome = response.read().decode() if response.status == 200 else None
                failure = None if outcome else f"HTTP {response.status}"
            except (OSError, http.client.HTTPException) as exc:
                outcome, failure = None, repr(exc)
                conn.close()  # a fresh connection for the next request, as clients do
            with load.lock:
                load.sent += 1
                if failure:
                    load.failures.append(failure)
                if outcome:
                    load.answers.add(outcome)
    finally:
        conn.close()


def test_switching_under_load_loses_no_request(caddy: Caddy, upstream: Upstream) -> None:
    port = free_port()
    blue, green = upstream("blue"), upstream("green")
    caddy.set_site("staging", port, upstream=blue)
    load = Load()
    until = time.monotonic() + 3.0
    clients = [threading.Thread(target=_client, args=(port, until, 1500, load)) for _ in range(6)]
    for client in clients:
        client.start()
    for switch in range(20):
        time.sleep(0.1)
        caddy.switch_upstream("staging", green if switch % 2 == 0 else blue)
    for client in clients:
        client.join(15)
    print(f"load: {load.sent} requests sent, {len(load.failures)} failed")
    assert load.failures == []
    assert load.answers == {"blue", "green"}
    assert load.sent > 100


def test_start_is_idempotent_and_a_restart_serves_the_same_sites(
    caddy: Caddy, upstream: Upstream
) -> None:
    port = free_port()
    caddy.set_site("staging", port, upstream=upstream("blue"))
    pid = caddy.pid_file.read_text()
    caddy.start()
    again = Caddy(caddy.root, caddy.admin_port)
    assert again.running()
    again.start()
    assert caddy.pid_file.read_text() == pid
    caddy.stop()
    assert not caddy.running()
    caddy.start()
    assert get(port) == (200, "blue")


def test_a_taken_admin_port_is_reported(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        caddy = Caddy(tmp_path / "caddy", port)
        with pytest.raises(PlatformError, match=f"admin port 127.0.0.1:{port} is already taken"):
            caddy.start()
    assert not caddy.running()


def test_a_taken_site_port_is_reported_and_nothing_changes(
    caddy: Caddy, upstream: Upstream
) -> None:
    free = free_port()
    caddy.set_site("staging", free, upstream=upstream("blue"))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(PlatformError, match=f"site 'other' on 127.0.0.1:{port}: Caddy") as e:
            caddy.set_site("other", port, upstream=upstream("green"))
    assert "address already in use" in str(e.value)
    assert set(caddy.sites()) == {"staging"}
    assert get(free) == (200, "blue")


def test_a_caddy_that_cannot_start_says_why(tmp_path: Path) -> None:
    root = tmp_path / "caddy"
    root.mkdir()
    (root / "caddy.json").write_text('{"apps": {"http": {"servers": {"bad": {"listen": 5}}}}}')
    caddy = Caddy(root, free_port())
    with pytest.raises(PlatformError, match="Caddy exited on start") as e:
        caddy.start()
    assert "listen" in str(e.value)
    assert not caddy.running()


def test_stop_leaves_no_caddy_process(tmp_path: Path) -> None:
    root = tmp_path / "caddy"
    caddy = Caddy(root, free_port())
    caddy.start()
    pid = int(caddy.pid_file.read_text())
    caddy.stop()
    caddy.stop()
    assert not caddy.running()
    assert not Path(f"/proc/{pid}").exists()
    assert [p for p in Path("/proc").glob("[0-9]*") if str(root) in _cmdline(p)] == []


def _cmdline(proc: Path) -> str:
    try:
        return (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""
