"""Where the environments stand against each other: drift along the promotion path.

- ``drift.diff``: what two environments last deployed successfully, side by side: the
  commits one has that the other lacks, their migration heads, the services each
  deploys and every configuration key whose value differs or that only one has.
- ``drift.behind``: for ``tiers status``, how many commits each environment is behind
  the one before it in the promotion order, and whether their migration heads differ.
- ``pending.pending``: for ``tiers status``, the work tree's migrations that a tier
  running the work tree (development) has not applied yet.

>>> drift = diff(config, Path("."), store, "staging", "production")   # doctest: +SKIP
>>> print(render(drift))
staging → production
...
"""

from tiers.status.drift import (
    Behind,
    Commits,
    Drift,
    KeyDiff,
    Side,
    behind,
    behind_line,
    check_environments,
    diff,
    render,
)
from tiers.status.pending import Pending, pending, pending_line

__all__ = [
    "Behind",
    "Commits",
    "Drift",
    "KeyDiff",
    "Pending",
    "Side",
    "behind",
    "behind_line",
    "check_environments",
    "diff",
    "pending",
    "pending_line",
    "render",
]
