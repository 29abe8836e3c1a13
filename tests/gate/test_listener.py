"""The gate's ``--verify-listen`` listener, byte by byte: what Caddy's connections get.

That it decides as the gate's ``/verify`` under uvicorn does is asserted by every
``Browser.verify`` in the gate's tests (both are asked, and must agree); here is the
HTTP around the decision: keep-alive, pipelining, what it refuses, and how it closes.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import cast

import pytest

from tests.gate.service import STAGING_API, Browser, Gate, running_gate, tiers_cli, write_config
from tests.pipeline.example import reserved_ports
from tiers.gate.core import CACHED
from tiers.gate.listener import MAX_HEADER_BYTES, VerifyProtocol
from tiers.gate.verify import Verifier


@pytest.fixture(scope="module")
def gate(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gate]:
    folder = tmp_path_factory.mktemp("listener")
    write_config(folder)
    with running_gate(folder) as running:
        yield running


def _ask(path: str = "/health", *, method: str = "GET", extra: str = "") -> bytes:
    return (
        f"{method} /verify HTTP/1.1\r\nHost: gate\r\nX-Forwarded-Host: {STAGING_API}\r\n"
        f"X-Forwarded-Uri: {path}\r\nX-Forwarded-Proto: http\r\n{extra}\r\n"
    ).encode()


def _exchange(gate: Gate, data: bytes) -> tuple[bytes, bool]:
    """Send ``data`` on one connection; everything answered, and whether the listener
    closed the connection (rather than keeping it open for more)."""
    port = int(gate.verify_url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(data)
        conn.settimeout(1.0)
        got = b""
        try:
            while chunk := conn.recv(65536):
                got += chunk
        except TimeoutError:
            return got, False
        return got, True


def _statuses(answer: bytes) -> list[str]:
    return [line.split(" ", 2)[1] for line in answer.decode().split("\r\n") if line[:5] == "HTTP/"]


def test_keeps_the_connection_and_answers_pipelined_requests_in_order(gate: Gate) -> None:
    answer, closed = _exchange(gate, _ask("/health") + _ask("/tracks"))
    assert _statuses(answer) == ["200", "401"]  # public, then sign-in required
    assert not closed
    assert answer.count(b"content-length: ") == 2


def test_honours_connection_close_and_http_1_0(gate: Gate) -> None:
    answer, closed = _exchange(gate, _ask(extra="Connection: close\r\n"))
    assert _statuses(answer) == ["200"] and closed
    old = _ask().replace(b"HTTP/1.1", b"HTTP/1.0")
    answer, closed = _exchange(gate, old)
    assert _statuses(answer) == ["200"] and closed


def test_head_gets_the_headers_without_the_body(gate: Gate) -> None:
    answer, _ = _exchange(gate, _ask("/tracks", method="HEAD"))
    head, _, body = answer.partition(b"\r\n\r\n")
    assert _statuses(head) == ["401"] and b"content-length: " in head
    assert body == b""


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"GET /elsewhere HTTP/1.1\r\nHost: gate\r\n\r\n", "404"),
        (b"GET /.tiers/access/login HTTP/1.1\r\nHost: gate\r\n\r\n", "404"),
        (b"POST /verify HTTP/1.1\r\nHost: gate\r\nContent-Length: 2\r\n\r\nhi", "405"),
        (b"this is not http\r\n\r\n", "400"),
        (
            b"GET /verify HTTP/1.1\r\nHost: gate\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\n\r\n",
            "400",
        ),
    ],
)
def test_refuses_anything_but_verify_and_closes(
    gate: Gate, request_bytes: bytes, status: str
) -> None:
    answer, closed = _exchange(gate, request_bytes + _ask())
    assert _statuses(answer) == [status]  # the request after it is never answered
    assert closed


def test_oversized_headers_are_refused(gate: Gate) -> None:
    big = f"X-Padding: {'a' * MAX_HEADER_BYTES}\r\n"
    answer, closed = _exchange(gate, _ask(extra=big))
    assert _statuses(answer) == ["431"] and closed


def test_an_anonymous_browser_is_sent_to_sign_in_by_both(gate: Gate) -> None:
    browser = Browser(gate)
    refused = browser.verify(STAGING_API, "/tracks")  # asks both listeners, which agree
    assert refused.status_code == 302
    assert "tiers-access-identity" not in refused.headers


def test_serve_refuses_a_bad_verify_listen(tmp_path: Path) -> None:
    write_config(tmp_path)
    with reserved_ports(1) as (port,):
        for verify, said in (
            (f"127.0.0.1:{port}", "the same port as --listen"),
            ("0.0.0.0:9", "not a loopback address"),
        ):
            serve = ("gate", "serve", "staging", "--listen", f"127.0.0.1:{port}")
            refused = tiers_cli(*serve, "--verify-listen", verify, cwd=tmp_path)
            assert refused.returncode == 2
            assert said in refused.stderr


def test_long_targets_are_decided_as_short_ones(gate: Gate) -> None:
    # past CACHED characters a target is worked out afresh each time, to the same answer
    browser = Browser(gate)
    for _ in range(2):
        assert browser.verify(STAGING_API, "/health?" + "x" * 2 * CACHED).status_code == 200
        assert browser.verify(STAGING_API, "/tracks/" + "a" * 2 * CACHED).status_code == 302


class _Transport:
    def __init__(self) -> None:
        self.written = b""
        self.closed = False

    def write(self, data: bytes) -> None:
        self.written += data

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def get_extra_info(self, name: str) -> object:
        return ("127.0.0.1", 50000) if name == "peername" else None


class _Broken:
    def answer(self, scope: object) -> object:
        raise KeyError("a bug")


def test_a_fault_of_the_gate_is_a_500_never_a_pass(capsys: pytest.CaptureFixture[str]) -> None:
    loop = asyncio.new_event_loop()
    try:
        protocol = VerifyProtocol(cast(Verifier, _Broken()), loop)
        transport = _Transport()
        protocol.connection_made(cast(asyncio.Transport, transport))
        protocol.data_received(b"GET /verify HTTP/1.1\r\nHost: gate\r\n\r\n")
        protocol.connection_lost(None)
    finally:
        loop.close()
    assert transport.written.startswith(b"HTTP/1.1 500 Internal Server Error\r\n")
    assert transport.closed
    assert "KeyError: 'a bug'" in capsys.readouterr().err
