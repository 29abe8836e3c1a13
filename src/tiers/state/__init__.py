"""The state store: what was deployed where, by whom, how it went, and who deploys now.

One database holds it all: SQLite in ``.tiers/state.db`` beside tiers.toml by default,
or a PostgreSQL database named by a state URL, shared by laptops and CI. Each deployment
is recorded with its steps and end state, and each environment has one deploy lock, a
lease kept alive by heartbeats so that a killed deploy does not block the next forever.

>>> store = StateStore.open(None, Path("."))                        # doctest: +SKIP
>>> with store.lock("staging", default_holder()):                  # doctest: +SKIP
...     run = store.begin("staging", "deploy", "2026.1126.010203", commit, "alice")
...     with store.step(run, "build"):
...         build()
...     store.finish(run, "succeeded")
>>> [d.version for d in store.history("staging")]                  # doctest: +SKIP
['2026.1126.010203', '2026.1125.170455']
"""

from tiers.errors import LockHeld
from tiers.state.lock import Lease, LockInfo, default_holder
from tiers.state.records import Deployment, Kind, Outcome, State, Step
from tiers.state.store import RunningStep, StateStore

__all__ = [
    "Deployment",
    "Kind",
    "Lease",
    "LockHeld",
    "LockInfo",
    "Outcome",
    "RunningStep",
    "State",
    "StateStore",
    "Step",
    "default_holder",
]
