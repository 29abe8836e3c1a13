"""The local platform: every tier of a project on one machine, no accounts, no containers.

- ``supervisor``: one process that runs the process groups, restarts them, keeps logs.
- ``caddy``: the HTTP data plane, one site per port, upstreams switched without a reload.
- ``redis``, ``postgres``: each environment's own redis-server and PostgreSQL cluster.
- ``ports``: free ports, taken ports, waiting for a port to answer.
"""

from tiers.platforms.local.caddy import Caddy, Site, caddy_binary
from tiers.platforms.local.ports import free_port, port_in_use, wait_for_port
from tiers.platforms.local.postgres import PostgresCluster
from tiers.platforms.local.redis import RedisServer
from tiers.platforms.local.supervisor import SupervisorClient, spawn

__all__ = [
    "Caddy",
    "PostgresCluster",
    "RedisServer",
    "Site",
    "SupervisorClient",
    "caddy_binary",
    "free_port",
    "port_in_use",
    "spawn",
    "wait_for_port",
]
