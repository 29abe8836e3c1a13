"""The environments table: one row per environment, one column per fact a reader compares.

Columns follow the services: ``<service> URL`` for each API, ``<service>`` for each
frontend (workers have no address to show), between the fixed columns of the seed's
table: ``environment | trigger | backend URL | database | redis | frontend | storage``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from tiers.config import Config, Environment, Redis, host_of
from tiers.docs.labels import provider


@dataclass(frozen=True)
class Column:
    """A column: its JSON key, its header, and the service it shows (None for the rest)."""

    key: str
    header: str
    service: str | None = None


@dataclass(frozen=True)
class Row:
    """One environment: a cell per column key (None when it has no such thing)."""

    environment: str
    cells: dict[str, str | None]
    urls: dict[str, str]


def columns(config: Config) -> list[Column]:
    """The table's columns for ``config``, in the seed's order.

    >>> [c.header for c in columns(plyr)]                       # doctest: +SKIP
    ['environment', 'trigger', 'backend URL', 'database', 'redis', 'frontend', 'storage']
    """
    apis = [
        Column(f"{n}_url", f"{n} URL", n) for n, s in config.services.items() if s.kind == "api"
    ]
    fronts = [Column(n, n, n) for n, s in config.services.items() if s.kind == "frontend"]
    return [
        Column("environment", "environment"),
        Column("trigger", "trigger"),
        *apis,
        Column("database", "database"),
        Column("redis", "redis"),
        *fronts,
        Column("storage", "storage"),
    ]


def rows(config: Config) -> list[Row]:
    """One row per environment, in promotion order.

    >>> rows(plyr)[1].cells["frontend"]                          # doctest: +SKIP
    'stg.plyr.fm (main branch)'
    """
    cols = columns(config)
    return [_row(env, cols) for env in config.environments.values()]


def _row(env: Environment, cols: list[Column]) -> Row:
    cells = {c.key: _cell(env, c) for c in cols}
    urls = {name: b.url for name, b in env.services.items() if b.url}
    return Row(env.name, cells, urls)


def _cell(env: Environment, column: Column) -> str | None:
    if column.service is not None:
        return _service(env, column.service)
    if column.key == "environment":
        return env.name
    if column.key == "trigger":
        return env.trigger.describe()
    return _RESOURCES[column.key](env)


def _service(env: Environment, name: str) -> str | None:
    binding = env.services.get(name)
    address = binding and (binding.url or binding.platform_url)
    if not binding or not address:
        return None
    branch = f" ({binding.branch} branch)" if binding.branch else ""
    return host_of(address) + branch


def database(env: Environment) -> str | None:
    """``plyr-dev (neon)``: the database's name and provider."""
    db = env.database
    return f"{db.name} ({provider(db.provider)})" if db else None


def redis(env: Environment) -> str | None:
    """``plyr-redis-stg (fly.io)``: the Redis name (or host) and provider."""
    found = env.redis
    return f"{redis_name(found)} ({provider(found.provider)})" if found else None


def redis_name(found: Redis) -> str:
    """Its name, else the host of its URL, else the secret that holds the URL."""
    return found.display or f"secret {found.url_secret}"


def storage(env: Environment) -> str | None:
    """``audio-dev, images-dev (r2)``: the bucket names and provider."""
    found = env.storage
    if found is None:
        return None
    return f"{', '.join(found.buckets.values())} ({provider(found.provider)})"


_RESOURCES: dict[str, Callable[[Environment], str | None]] = {
    "database": database,
    "redis": redis,
    "storage": storage,
}


def markdown(config: Config) -> str:
    """The table as GitHub markdown, environment names in bold, no trailing newline.

    >>> print(markdown(plyr).splitlines()[2])                   # doctest: +SKIP
    | **development** | local | localhost:8001 | plyr-dev (neon) | ... |
    """
    cols = columns(config)
    lines = [
        _line(c.header for c in cols),
        "|" + "|".join("-" * (len(c.header) + 2) for c in cols) + "|",
    ]
    for row in rows(config):
        cells = [row.cells[c.key] or "—" for c in cols]
        cells[0] = f"**{row.environment}**"
        lines.append(_line(cells))
    return "\n".join(lines)


def _line(cells: Iterable[str]) -> str:
    return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"


def as_json(config: Config) -> list[dict[str, Any]]:
    """The table as data with stable keys: every column key, plus ``urls`` by service.

    >>> as_json(plyr)[0]["database"]                             # doctest: +SKIP
    'plyr-dev (neon)'
    """
    return [{**row.cells, "urls": row.urls} for row in rows(config)]
