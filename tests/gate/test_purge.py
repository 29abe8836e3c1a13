"""What the gate keeps in the state store: ended sessions and old PINs go after a day."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import sqlalchemy as sa

from tests.gate.service import write_config
from tiers.config import load
from tiers.gate.core import PURGE_AFTER, Gate
from tiers.gate.identity import Identity
from tiers.gate.otp import LIFETIME
from tiers.gate.store import now
from tiers.state import StateStore
from tiers.state.schema import access_codes, access_sessions

ANA = Identity("user", "ana@plyr.fm", "otp", email="ana@plyr.fm")


def test_ended_sessions_and_old_codes_are_purged(tmp_path: Path) -> None:
    write_config(tmp_path)
    config = load(tmp_path / "tiers.toml").config
    with StateStore.open(None, tmp_path) as state:
        gate = Gate(config, "staging", state, tmp_path / ".tiers")
        store, moment = gate.store, now()
        long_ago = moment - PURGE_AFTER - timedelta(hours=1)
        store.create_session("live", ANA, moment + timedelta(hours=1))
        store.create_session("ended-today", ANA, moment - timedelta(hours=1))
        store.create_session("ended-long-ago", ANA, long_ago)
        store.create_session("revoked-long-ago", ANA, moment + timedelta(hours=1))
        store.add_code("old@plyr.fm", "digest", "127.0.0.1", LIFETIME)
        store.add_code("new@plyr.fm", "digest", "127.0.0.1", LIFETIME)
        with state.engine.begin() as connection:
            connection.execute(
                access_sessions.update()
                .where(access_sessions.c.id == "revoked-long-ago")
                .values(revoked_at=long_ago)
            )
            connection.execute(
                access_codes.update()
                .where(access_codes.c.address == "old@plyr.fm")
                .values(created_at=long_ago)
            )
        other = Gate(config, "production", state, tmp_path / ".tiers")
        other.store.create_session("production-ended", ANA, long_ago)

        gate.refresh()

        with state.engine.connect() as connection:
            sessions = set(connection.execute(sa.select(access_sessions.c.id)).scalars())
            codes = set(connection.execute(sa.select(access_codes.c.address)).scalars())
        assert sessions == {"live", "ended-today", "production-ended"}  # each gate its own
        assert codes == {"new@plyr.fm"}
        assert set(gate.sessions.sessions) == {"live"}
