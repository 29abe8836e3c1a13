"""What the gate keeps in the state store: sessions, one-time PINs, service tokens, events.

The gate reads these tables in bulk (its caches reload the live sessions and tokens of
its environment every second), never once per request; the login flows and the
``tiers access`` commands write them. Times are the gate machine's UTC clock, which is
also the clock its caches compare with.

>>> access = AccessStore(StateStore.open(None, Path(".")).engine, "staging")  # doctest: +SKIP
>>> access.event("login", "ana@plyr.fm", method="otp", client="127.0.0.1")   # doctest: +SKIP
>>> [e.kind for e in access.events(limit=1)]                                 # doctest: +SKIP
['login']
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from tiers.gate.identity import Identity
from tiers.state.database import translated
from tiers.state.schema import access_codes, access_events, access_sessions, access_tokens

__all__ = ["AccessStore", "Code", "Event", "Token", "identity_from_json", "now"]


def now() -> datetime:
    return datetime.now(UTC)


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat(timespec="seconds") if moment else None


@dataclass(frozen=True)
class Event:
    """One line of ``tiers access log``."""

    id: int
    at: datetime
    kind: str
    identity: str | None
    method: str | None
    client: str | None
    detail: str | None

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "at": _iso(self.at)}


@dataclass(frozen=True)
class Token:
    """A service token as stored (its secret only as a SHA-256 digest)."""

    client_id: str
    name: str
    digest: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None

    def live(self, moment: datetime) -> bool:
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > moment)

    def to_json(self) -> dict[str, Any]:
        state = "revoked" if self.revoked_at else "live" if self.live(now()) else "expired"
        return {
            "name": self.name,
            "client_id": self.client_id,
            "state": state,
            "created_at": _iso(self.created_at),
            "expires_at": _iso(self.expires_at),
            "revoked_at": _iso(self.revoked_at),
            "last_used_at": _iso(self.last_used_at),
        }


@dataclass(frozen=True)
class Code:
    id: int
    digest: str | None
    expires_at: datetime
    attempts: int
    used_at: datetime | None


def identity_from_json(data: dict[str, Any]) -> Identity:
    for key in ("github_orgs", "github_teams", "groups"):
        data[key] = tuple(data.get(key) or ())
    return Identity(**data)


class AccessStore:
    """One environment's rows in the ``access_*`` tables."""

    def __init__(
        self, engine: Engine, environment: str, shown_url: str = "the state store"
    ) -> None:
        self.engine = engine
        self.environment = environment
        self.url = shown_url

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[Connection]:
        with translated(self.url), self.engine.begin() as connection:
            yield connection

    # -- sessions --------------------------------------------------------------------

    def create_session(self, session_id: str, identity: Identity, expires_at: datetime) -> None:
        with self._transaction() as connection:
            connection.execute(
                access_sessions.insert().values(
                    id=session_id,
                    environment=self.environment,
                    identity=asdict(identity),
                    created_at=now(),
                    expires_at=expires_at,
                )
            )

    def revoke_session(self, session_id: str) -> bool:
        with self._transaction() as connection:
            result = connection.execute(
                access_sessions.update()
                .where(
                    access_sessions.c.id == session_id,
                    access_sessions.c.environment == self.environment,
                    access_sessions.c.revoked_at.is_(None),
                )
                .values(revoked_at=now())
            )
            return bool(result.rowcount)

    def live_sessions(self) -> dict[str, tuple[Identity, datetime]]:
        """Every unrevoked, unexpired session of the environment: id → (who, until)."""
        query = sa.select(access_sessions).where(
            access_sessions.c.environment == self.environment,
            access_sessions.c.revoked_at.is_(None),
            access_sessions.c.expires_at > now(),
        )
        with self._transaction() as connection:
            rows = connection.execute(query).all()
        return {row.id: (identity_from_json(dict(row.identity)), row.expires_at) for row in rows}

    def purge(self, before: datetime) -> int:
        """Delete the sessions that ended (expired or revoked) and the PINs made before
        ``before``: the per-request path never reads them again, and the access log keeps
        its own events. The number of rows deleted."""
        ended = sa.or_(access_sessions.c.expires_at < before, access_sessions.c.revoked_at < before)
        with self._transaction() as connection:
            sessions = connection.execute(
                access_sessions.delete().where(
                    access_sessions.c.environment == self.environment, ended
                )
            )
            codes = connection.execute(
                access_codes.delete().where(
                    access_codes.c.environment == self.environment,
                    access_codes.c.created_at < before,
                )
            )
        return int(sessions.rowcount) + int(codes.rowcount)

    # -- one-time PINs -----------------------------------------------------------------

    def add_code(self, address: str, digest: str | None, client: str, lifetime: timedelta) -> None:
        """Record a code sent (or, with no digest, a request refused silently); an
        address's older codes stop working, so only the newest one counts."""
        moment = now()
        with self._transaction() as connection:
            connection.execute(
                access_codes.update()
                .where(*self._codes_of(address), access_codes.c.used_at.is_(None))
                .values(used_at=moment)
            )
            connection.execute(
                access_codes.insert().values(
                    environment=self.environment,
                    address=address,
                    digest=digest,
                    client=client,
                    created_at=moment,
                    expires_at=moment + lifetime,
                    attempts=0,
                )
            )

    def _codes_of(self, address: str) -> tuple[sa.ColumnElement[bool], ...]:
        return (access_codes.c.environment == self.environment, access_codes.c.address == address)

    def codes_since(
        self, since: datetime, *, address: str | None = None, client: str | None = None
    ) -> int:
        conditions = [access_codes.c.environment == self.environment]
        conditions.append(access_codes.c.created_at > since)
        if address is not None:
            conditions.append(access_codes.c.address == address)
        if client is not None:
            conditions.append(access_codes.c.client == client)
        query = sa.select(sa.func.count()).select_from(access_codes).where(*conditions)
        with self._transaction() as connection:
            return int(connection.execute(query).scalar_one())

    def newest_code(self, address: str) -> Code | None:
        query = (
            sa.select(access_codes)
            .where(*self._codes_of(address))
            .order_by(access_codes.c.id.desc())
            .limit(1)
        )
        with self._transaction() as connection:
            row = connection.execute(query).first()
        if row is None:
            return None
        return Code(row.id, row.digest, row.expires_at, row.attempts, row.used_at)

    def code_failed(self, code_id: int) -> None:
        with self._transaction() as connection:
            connection.execute(
                access_codes.update()
                .where(access_codes.c.id == code_id)
                .values(attempts=access_codes.c.attempts + 1)
            )

    def use_code(self, code_id: int) -> bool:
        """Mark the code used; False if someone used it first (a PIN works once)."""
        with self._transaction() as connection:
            result = connection.execute(
                access_codes.update()
                .where(access_codes.c.id == code_id, access_codes.c.used_at.is_(None))
                .values(used_at=now())
            )
            return result.rowcount == 1

    # -- service tokens ----------------------------------------------------------------

    def add_token(
        self, client_id: str, name: str, digest: str, expires_at: datetime | None
    ) -> None:
        with self._transaction() as connection:
            connection.execute(
                access_tokens.insert().values(
                    client_id=client_id,
                    environment=self.environment,
                    name=name,
                    digest=digest,
                    created_at=now(),
                    expires_at=expires_at,
                )
            )

    def tokens(self) -> list[Token]:
        query = (
            sa.select(access_tokens)
            .where(access_tokens.c.environment == self.environment)
            .order_by(access_tokens.c.created_at, access_tokens.c.name)
        )
        with self._transaction() as connection:
            rows = connection.execute(query).all()
        return [
            Token(
                row.client_id,
                row.name,
                row.digest,
                row.created_at,
                row.expires_at,
                row.revoked_at,
                row.last_used_at,
            )
            for row in rows
        ]

    def revoke_token(self, name: str) -> int:
        """Revoke the live tokens called ``name``; how many there were."""
        with self._transaction() as connection:
            result = connection.execute(
                access_tokens.update()
                .where(
                    access_tokens.c.environment == self.environment,
                    access_tokens.c.name == name,
                    access_tokens.c.revoked_at.is_(None),
                )
                .values(revoked_at=now())
            )
            return int(result.rowcount)

    def tokens_used(self, uses: dict[str, tuple[str, datetime, str]]) -> None:
        """Record token uses: client id → (name, when, client address)."""
        with self._transaction() as connection:
            for client_id, (name, moment, client) in uses.items():
                connection.execute(
                    access_tokens.update()
                    .where(access_tokens.c.client_id == client_id)
                    .values(last_used_at=moment)
                )
                connection.execute(
                    access_events.insert().values(
                        environment=self.environment,
                        at=moment,
                        kind="token-use",
                        identity=f"service:{name}",
                        method="token",
                        client=client,
                    )
                )

    # -- events --------------------------------------------------------------------------

    def event(
        self,
        kind: str,
        identity: str | None = None,
        *,
        method: str | None = None,
        client: str | None = None,
        detail: str | None = None,
    ) -> None:
        with self._transaction() as connection:
            connection.execute(
                access_events.insert().values(
                    environment=self.environment,
                    at=now(),
                    kind=kind,
                    identity=identity,
                    method=method,
                    client=client,
                    detail=detail,
                )
            )

    def events(
        self,
        *,
        limit: int | None = 50,
        kind: str | None = None,
        since: datetime | None = None,
        client: str | None = None,
    ) -> list[Event]:
        """The environment's events, newest first."""
        conditions = [access_events.c.environment == self.environment]
        if kind is not None:
            conditions.append(access_events.c.kind == kind)
        if since is not None:
            conditions.append(access_events.c.at > since)
        if client is not None:
            conditions.append(access_events.c.client == client)
        query = sa.select(access_events).where(*conditions).order_by(access_events.c.id.desc())
        with self._transaction() as connection:
            rows = connection.execute(query.limit(limit)).all()
        return [
            Event(row.id, row.at, row.kind, row.identity, row.method, row.client, row.detail)
            for row in rows
        ]
