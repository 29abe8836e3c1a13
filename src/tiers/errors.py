"""The one exception tree of tiers.

::

    TiersError                  anything tiers reports to a user (message, exit code)
     ├── UsageError             unusable input or usage: exit 2
     │    ├── ConfigError       tiers.toml is missing, malformed or invalid (file:line:col)
     │    └── ImportFailed      a platform file given to `tiers import` cannot be read
     └── OperationError         an operation ran and failed, or found problems: exit 1
          ├── PlatformError     a platform's component (redis-server, PostgreSQL, Caddy, a
          │                     process) is missing, will not start or does not answer
          └── LockHeld          another deploy holds the environment's lock (who, since when)

Errors from libraries and subprocesses are translated into this tree where they enter
our code, so the command line turns them into one clear line and an exit code in one
place (``tiers.cli``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

__all__ = [
    "ConfigError",
    "ImportFailed",
    "LockHeld",
    "OperationError",
    "PlatformError",
    "Problem",
    "TiersError",
    "UsageError",
]


class TiersError(Exception):
    """Base of every error tiers reports; ``exit_code`` says how the CLI ends."""

    exit_code = 1


class UsageError(TiersError):
    exit_code = 2


class OperationError(TiersError):
    exit_code = 1


class ImportFailed(UsageError):
    pass


class PlatformError(OperationError):
    """A component could not be found, started or reached; the message says which and why."""


class LockHeld(OperationError):
    """The environment is being deployed by someone else, whose lease is still alive."""

    def __init__(
        self, environment: str, holder: str, since: datetime, deployment_id: int | None
    ) -> None:
        self.environment = environment
        self.holder = holder
        self.since = since
        self.deployment_id = deployment_id
        which = f" (deployment {deployment_id})" if deployment_id is not None else ""
        super().__init__(
            f"{environment} is being deployed by {holder} since "
            f"{since.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC{which}; "
            "wait for it or pass --wait to queue"
        )


@dataclass(frozen=True)
class Problem:
    """One thing wrong in a config file, with where it is and how to fix it."""

    file: str
    line: int
    column: int
    key: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}:{self.column}"
        return f"{where} {self.key}: {self.message}" if self.key else f"{where} {self.message}"


class ConfigError(UsageError):
    """tiers.toml could not be turned into a model; ``problems`` lists every reason."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))
