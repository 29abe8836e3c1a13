"""Ports: a free one is free, a taken one is seen, and waiting ends when the server dies."""

from __future__ import annotations

import http.server
import socket
import subprocess
import sys
import threading
import time

import pytest

from tiers.platforms.local import free_port, port_in_use, wait_for_port
from tiers.platforms.local.ports import http_ok


def test_a_free_port_is_not_in_use_until_something_listens() -> None:
    port = free_port()
    assert not port_in_use(port)
    with socket.socket() as server:
        server.bind(("127.0.0.1", port))
        server.listen()
        assert port_in_use(port)
        assert wait_for_port(port, timeout=1)


def test_a_port_bound_without_listening_is_in_use() -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        assert port_in_use(holder.getsockname()[1])


def test_waiting_gives_up_after_the_timeout() -> None:
    started = time.monotonic()
    assert not wait_for_port(free_port(), timeout=0.3)
    assert 0.3 <= time.monotonic() - started < 2


def test_waiting_ends_at_once_when_the_server_exits() -> None:
    with subprocess.Popen([sys.executable, "-c", "raise SystemExit(1)"]) as server:
        started = time.monotonic()
        assert not wait_for_port(free_port(), timeout=30, process=server)
        assert time.monotonic() - started < 10
    assert not wait_for_port(free_port(), timeout=30, process=server.pid)


def test_a_health_check_never_goes_through_a_proxy_named_by_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Health)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/health"
        for name in ("http_proxy", "HTTP_PROXY", "all_proxy"):
            monkeypatch.setenv(name, f"http://127.0.0.1:{free_port()}")  # nothing listens
        monkeypatch.delenv("no_proxy", raising=False)
        monkeypatch.delenv("NO_PROXY", raising=False)
        assert http_ok(url)
        assert not http_ok(url.replace("/health", "/missing"))
    finally:
        server.shutdown()
        server.server_close()


class _Health(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200 if self.path == "/health" else 404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass
