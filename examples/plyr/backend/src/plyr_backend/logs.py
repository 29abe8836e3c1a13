"""Log lines that say which environment and which process wrote them."""

from __future__ import annotations

import logging

from plyr_backend.settings import Settings


def configure(settings: Settings, process: str) -> None:
    # The observability environment name is what log search filters on (LOGFIRE_ENVIRONMENT).
    environment = settings.observability_environment or settings.environment or "-"
    logging.basicConfig(
        level=logging.INFO,
        format=f"%(asctime)s {environment} {process} %(levelname)s %(name)s: %(message)s",
    )
    # /health reads the schema revision on every call; alembic would log each one.
    logging.getLogger("alembic.runtime.migration").setLevel(logging.WARNING)
