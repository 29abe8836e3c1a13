"""``tiers gate serve``: run one environment's gate (the decision service) with uvicorn.

The gate trusts ``X-Forwarded-*`` headers, which only Caddy may set, so it listens on a
loopback address unless told ``--public`` (for a gate behind a proxy elsewhere that
strips those headers from clients). With ``--verify-listen`` it also answers ``/verify``
on a second address, through :mod:`tiers.gate.listener`, in the same process and event
loop (the same sessions, tokens and keys).
"""

from __future__ import annotations

import errno
import ipaddress
import socket
from pathlib import Path
from typing import TYPE_CHECKING

from tiers.config import load
from tiers.errors import OperationError, UsageError
from tiers.gate.core import protected
from tiers.state import StateStore

if TYPE_CHECKING:
    from tiers.gate.app import GateASGI

__all__ = ["parse_listen", "serve"]


def parse_listen(text: str, *, public: bool) -> tuple[str, int]:
    """``127.0.0.1:8100`` → (host, port); a non-loopback host only with ``public``."""
    host, colon, port_text = text.rpartition(":")
    host = host.strip("[]")
    if not colon or not host or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise UsageError(f"--listen {text!r}: expected HOST:PORT, e.g. 127.0.0.1:8100")
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback and not public:
        raise UsageError(
            f"--listen {text}: not a loopback address; the gate trusts X-Forwarded-* headers "
            "that only Caddy may set, so it listens on 127.0.0.1 (add --public if a proxy "
            "in front of it strips them from clients)"
        )
    return host, int(port_text)


def _free(host: str, port: int) -> None:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise OperationError(
                    f"cannot listen on {host}:{port}: another process uses that port; pick "
                    "another with --listen HOST:PORT"
                ) from None
            raise OperationError(f"cannot listen on {host}:{port}: {exc.strerror}") from None


def serve(
    config_path: Path,
    environment: str,
    listen: str,
    verify_listen: str | None = None,
    *,
    public: bool,
    state_url: str | None,
) -> None:
    """Run the gate until interrupted."""
    import uvloop

    from tiers.gate.app import make_app

    host, port = parse_listen(listen, public=public)
    verify = parse_listen(verify_listen, public=public) if verify_listen else None
    if verify is not None and verify[1] == port:
        raise UsageError(f"--verify-listen {verify_listen}: the same port as --listen")
    config = load(config_path).config
    protected(config, environment)
    _free(host, port)
    if verify is not None:
        _free(*verify)
    project_dir = config_path.resolve().parent
    with StateStore.open(state_url, project_dir) as state:
        app = make_app(config, environment, state, project_dir / ".tiers")
        uvloop.run(_run(app, environment, (host, port), verify))


async def _run(
    app: GateASGI, environment: str, pages: tuple[str, int], verify: tuple[str, int] | None
) -> None:
    import uvicorn

    from tiers.gate.listener import start

    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host=pages[0],
            port=pages[1],
            log_level="warning",
            access_log=False,
            http="httptools",
            lifespan="on",
        )
    )
    listener = await start(app.verifier, *verify) if verify else None
    said = f"tiers gate {environment}: listening on http://{pages[0]}:{pages[1]}"
    if verify:
        said += f", /verify also on http://{verify[0]}:{verify[1]}"
    print(said, flush=True)
    try:
        await server.serve()
    finally:
        if listener is not None:
            listener.close()
