"""The state store's tables, the same on SQLite and PostgreSQL.

- ``deployments``: one row per deployment or rollback of an environment;
- ``steps``: the steps of each deployment, in the order they started;
- ``locks``: at most one row per environment, the lease of whoever deploys it now;
- ``access_*``: the gate's sessions, one-time PINs, service tokens and events (see
  :mod:`tiers.gate.store`).

Timestamps are stored in UTC and always read back timezone-aware (SQLite keeps no
zone, so :class:`UTCDateTime` adds it), and SQLite's text form sorts like time, so
``expires_at < :now`` compares correctly on both databases.

>>> metadata.create_all(engine)                                  # doctest: +SKIP
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect

metadata = sa.MetaData()


class UTCDateTime(sa.TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every database."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: the state store keeps UTC times")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        moment: datetime = value
        if moment.tzinfo is None:
            return moment.replace(tzinfo=UTC)
        return moment.astimezone(UTC)


deployments = sa.Table(
    "deployments",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("environment", sa.String(200), nullable=False),
    sa.Column("kind", sa.String(20), nullable=False),
    sa.Column("version", sa.String(200), nullable=False),
    sa.Column("commit", sa.String(64)),
    sa.Column("actor", sa.String(200), nullable=False),
    sa.Column("started_at", UTCDateTime, nullable=False),
    sa.Column("finished_at", UTCDateTime),
    sa.Column("state", sa.String(20), nullable=False),
    sa.Column("migration_before", sa.String(200)),
    sa.Column("migration_after", sa.String(200)),
    sa.Column("manifest", sa.JSON, nullable=False),
    sa.Column("error", sa.Text),
    sa.Index("deployments_by_environment", "environment", "id"),
)

steps = sa.Table(
    "steps",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column(
        "deployment_id",
        sa.Integer,
        sa.ForeignKey("deployments.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("started_at", UTCDateTime, nullable=False),
    sa.Column("duration_ms", sa.Float),
    sa.Column("outcome", sa.String(20), nullable=False),
    sa.Column("detail", sa.Text),
)

locks = sa.Table(
    "locks",
    metadata,
    sa.Column("environment", sa.String(200), primary_key=True),
    sa.Column("holder", sa.String(400), nullable=False),
    # A random value per acquisition: the holder string may repeat (same user, host and
    # pid in two threads), the token says which acquisition a row belongs to.
    sa.Column("token", sa.String(64), nullable=False),
    sa.Column("acquired_at", UTCDateTime, nullable=False),
    sa.Column("heartbeat_at", UTCDateTime, nullable=False),
    sa.Column("expires_at", UTCDateTime, nullable=False),
    sa.Column("deployment_id", sa.Integer),
)


access_sessions = sa.Table(
    "access_sessions",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("environment", sa.String(200), nullable=False),
    sa.Column("identity", sa.JSON, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("expires_at", UTCDateTime, nullable=False),
    sa.Column("revoked_at", UTCDateTime),
    sa.Index("access_sessions_by_environment", "environment", "expires_at"),
)

access_codes = sa.Table(
    "access_codes",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("environment", sa.String(200), nullable=False),
    sa.Column("address", sa.String(320), nullable=False),
    # HMAC-SHA256 of the PIN with the environment's gate secret: never the PIN itself
    sa.Column("digest", sa.String(64)),
    sa.Column("client", sa.String(100)),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("expires_at", UTCDateTime, nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("used_at", UTCDateTime),
    sa.Index("access_codes_by_address", "environment", "address", "created_at"),
)

access_tokens = sa.Table(
    "access_tokens",
    metadata,
    sa.Column("client_id", sa.String(100), primary_key=True),
    sa.Column("environment", sa.String(200), nullable=False),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("digest", sa.String(64), nullable=False),  # SHA-256 of the secret
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("expires_at", UTCDateTime),
    sa.Column("revoked_at", UTCDateTime),
    sa.Column("last_used_at", UTCDateTime),
    sa.Index("access_tokens_by_name", "environment", "name"),
)

access_events = sa.Table(
    "access_events",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("environment", sa.String(200), nullable=False),
    sa.Column("at", UTCDateTime, nullable=False),
    sa.Column("kind", sa.String(40), nullable=False),
    sa.Column("identity", sa.String(400)),
    sa.Column("method", sa.String(20)),
    sa.Column("client", sa.String(100)),
    sa.Column("detail", sa.Text),
    sa.Index("access_events_by_environment", "environment", "id"),
)
