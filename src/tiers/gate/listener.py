"""The decision's own listener: ``GET /verify`` over HTTP/1.1, without an ASGI cycle.

Caddy asks ``/verify`` once for every request to a protected site, so what it costs is
added to each of them. The gate's pages run under uvicorn and Starlette, which also
answer ``/verify``; this listener answers the same :meth:`Verifier.answer
<tiers.gate.verify.Verifier.answer>` with less in between: httptools parses the
request, the answer is written from the parser's callback, and no task, scope or ASGI
message is made per request. On this machine that halves what the gate spends on a
request (``bench/gate.py`` prints both).

It serves Caddy's ``forward_auth`` connections and nothing else, on loopback only
(:func:`tiers.gate.serve.parse_listen`): ``GET`` or ``HEAD /verify``; any other path is a
404, any other method a 405, a request it cannot parse a 400, headers over 64 KiB a 431
(each of those closes the connection); a fault of the gate's own is a 500, never a
pass, with its traceback on stderr. A body is read and ignored: ``forward_auth``
sends none. Keep-alive and pipelined requests are answered in order; a connection idle
for :data:`IDLE_SECONDS` is closed.
"""

from __future__ import annotations

import asyncio
import sys
import traceback
from http import HTTPStatus
from typing import cast

import httptools

from tiers.gate.verify import Answer, Verifier

__all__ = ["IDLE_SECONDS", "MAX_HEADER_BYTES", "VerifyProtocol", "start"]

IDLE_SECONDS = 75.0
"""How long a kept-alive connection may wait for its next request (Caddy's idle
connections to an upstream last two minutes unless it closes them first)."""
MAX_HEADER_BYTES = 64 * 1024


def _refusal(status: HTTPStatus, message: str) -> Answer:
    return status, [(b"content-type", b"text/plain; charset=utf-8")], f"{message}\n".encode()


class VerifyProtocol(asyncio.Protocol):
    """One connection from Caddy."""

    def __init__(self, verifier: Verifier, loop: asyncio.AbstractEventLoop) -> None:
        self.verifier = verifier
        self.loop = loop
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.client: tuple[str, int] | None = None
        self.idle: asyncio.TimerHandle | None = None
        self.url = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.size = 0

    # -- the connection ----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's are not subclasses
        peer = self.transport.get_extra_info("peername")
        self.client = (str(peer[0]), int(peer[1])) if peer else None
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.idle is not None:
            self.idle.cancel()
        self.transport = None

    def data_received(self, data: bytes) -> None:
        if self.idle is not None:
            self.idle.cancel()
            self.idle = None
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserCallbackError as error:  # a fault of the gate's own
            fault = error.__context__ or error
            print("tiers gate: /verify failed:", file=sys.stderr)
            traceback.print_exception(fault, file=sys.stderr)
            failed = "refused: the gate failed (its log says why)"
            self._refuse(HTTPStatus.INTERNAL_SERVER_ERROR, failed)
        except httptools.HttpParserError:
            self._refuse(HTTPStatus.BAD_REQUEST, "refused: not a readable request")
        except httptools.HttpParserUpgrade:
            self._refuse(HTTPStatus.BAD_REQUEST, "refused: no upgrades here")
        else:
            self._arm()

    def _arm(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.idle = self.loop.call_later(IDLE_SECONDS, self.transport.close)

    # -- httptools' callbacks ------------------------------------------------------------

    def on_message_begin(self) -> None:
        self.url = b""
        self.headers = []
        self.size = 0

    def on_url(self, url: bytes) -> None:
        self.url += url
        self.size += len(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self.size += len(name) + len(value)
        if self.size <= MAX_HEADER_BYTES:
            self.headers.append((name.lower(), value))

    def on_message_complete(self) -> None:
        keep = self.parser.should_keep_alive()
        if self.size > MAX_HEADER_BYTES:
            self._refuse(HTTPStatus(431), "refused: the headers are too large")
            return
        method = self.parser.get_method()
        if httptools.parse_url(self.url).path != b"/verify":
            self._refuse(HTTPStatus.NOT_FOUND, "this listener answers /verify only")
        elif method not in (b"GET", b"HEAD"):
            self._refuse(HTTPStatus.METHOD_NOT_ALLOWED, "GET /verify only")
        else:
            answer = self.verifier.answer({"headers": self.headers, "client": self.client})
            self._finish(answer, keep, head=method == b"HEAD")

    # -- the answer --------------------------------------------------------------------

    def _refuse(self, status: HTTPStatus, message: str) -> None:
        self._finish(_refusal(status, message), keep=False)

    def _finish(self, answer: Answer, keep: bool, *, head: bool = False) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        status, headers, body = answer
        lines = [b"HTTP/1.1 %d %s\r\n" % (status, HTTPStatus(status).phrase.encode())]
        lines += [name + b": " + value + b"\r\n" for name, value in headers]
        lines.append(b"content-length: %d\r\n" % len(body))
        if not keep:
            lines.append(b"connection: close\r\n")
        lines.append(b"\r\n")
        if not head:
            lines.append(body)
        self.transport.write(b"".join(lines))
        if not keep:
            self.transport.close()


async def start(verifier: Verifier, host: str, port: int) -> asyncio.Server:
    """Listen on ``host:port`` (already checked free and loopback) for ``verifier``."""
    loop = asyncio.get_running_loop()
    return await loop.create_server(lambda: VerifyProtocol(verifier, loop), host, port)
