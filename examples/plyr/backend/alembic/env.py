"""Migrations run against DATABASE_URL, the same variable the app reads."""

from __future__ import annotations

import os

from alembic import context
from plyr_backend.db import Base
from plyr_backend.settings import SettingsError, database_url
from sqlalchemy import engine_from_config, pool

config = context.config
if config.config_file_name is not None and config.attributes.get("configure_logger", True):
    from logging.config import fileConfig

    fileConfig(config.config_file_name)

target_metadata = Base.metadata

try:
    URL = database_url(os.environ)
except SettingsError as exc:
    raise SystemExit(f"alembic: {exc}") from None


def run_migrations_offline() -> None:
    context.configure(url=URL, target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    engine = engine_from_config(
        {"sqlalchemy.url": URL}, prefix="sqlalchemy.", poolclass=pool.NullPool
    )
    with engine.connect() as connection:
        # render_as_batch lets SQLite alter tables by copying them.
        context.configure(
            connection=connection, target_metadata=target_metadata, render_as_batch=True
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
