"""``tiers gate caddyfile``: the Caddyfile that puts a standalone gate in front of any
upstream, with the same steps the local platform configures through Caddy's admin API
(:mod:`tiers.platforms.local.gate`): strip client-sent identity headers, send the gate's
own pages to it, ``forward_auth`` everything else to ``/verify``, and take a service
token's headers and the gate's own cookies off the request before the app sees it.

One site block per service of the environment, on the host users reach it at (its
``url``, else its ``platform_url``); the upstream of each is given on the command line.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from tiers.config import Environment
from tiers.errors import UsageError
from tiers.platforms.local.gate import (
    GATE_COOKIES,
    IDENTITY_HEADERS,
    PREFIX,
    RETRY,
    TOKEN_HEADERS,
)

__all__ = ["caddyfile"]


def _deletes(names: tuple[str, ...], indent: str) -> list[str]:
    spellings = [*names, *(n.replace("-", "_") for n in names)]
    return [f"{indent}request_header -{name}" for name in spellings]


def caddyfile(
    env: Environment, gate: str, upstreams: dict[str, str], verify: str | None = None
) -> str:
    """The Caddyfile text; ``upstreams`` maps a service to the ``HOST:PORT`` it listens on
    (UsageError naming the services without one, or names that are not services);
    ``verify``, the gate's ``--verify-listen`` address, takes ``forward_auth``'s asks."""
    sites = {name: b.address for name, b in env.services.items() if b.address}
    unknown = sorted(set(upstreams) - set(sites))
    if unknown:
        raise UsageError(
            f"--upstream {', '.join(unknown)}: not a service of {env.name} with a URL "
            f"(its services: {', '.join(sorted(sites)) or 'none'})"
        )
    missing = sorted(set(sites) - set(upstreams))
    if missing:
        raise UsageError(
            f"{env.name}: say where {', '.join(missing)} listens, e.g. "
            f"--upstream {missing[0]}=127.0.0.1:9000"
        )
    blocks = [
        f"# The tiers gate of {env.name} in front of each of its sites. Run the gate with\n"
        f"#   tiers gate serve {env.name} --listen {gate}"
        + (f" --verify-listen {verify}" if verify else "")
    ]
    # a gate starting (again) is waited for, not failed: 502 only once the time is up
    retry = [
        f"            lb_try_duration {RETRY['try_duration']}",
        f"            lb_try_interval {RETRY['try_interval']}",
    ]
    for name, address in sites.items():
        parts = urlsplit(address)
        site = f"{parts.scheme}://{parts.netloc}"
        lines = [f"{site} {{", "    # only the gate names an identity to the app"]
        lines += _deletes(IDENTITY_HEADERS, "    ")
        lines += [
            f"    handle {PREFIX}* {{",
            f"        reverse_proxy {gate} {{",
            *retry,
            "        }",
            "    }",
            "    handle {",
            f"        forward_auth {verify or gate} {{",
            "            uri /verify",
            *retry,
            f"            copy_headers {' '.join(IDENTITY_HEADERS)}",
            "        }",
        ]
        lines += _deletes(TOKEN_HEADERS, "        ")
        lines += [f'        request_header Cookie "{r}" ""' for r in GATE_COOKIES]
        lines += [f"        reverse_proxy {upstreams[name]}", "    }", "}"]
        blocks.append("\n".join(lines))
    # tabs, as `caddy fmt` writes it (Caddy warns on every start about anything else)
    return re.sub(r"^(?: {4})+", _tabs, "\n\n".join(blocks) + "\n", flags=re.MULTILINE)


def _tabs(indent: re.Match[str]) -> str:
    return "\t" * (len(indent[0]) // 4)
