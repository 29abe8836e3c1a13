"""The tracks table, the engine, and the schema revision the database is at."""

from __future__ import annotations

from datetime import datetime

from alembic.runtime.migration import MigrationContext
from sqlalchemy import DateTime, Engine, Float, Integer, String, create_engine, func
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class Track(Base):
    __tablename__ = "tracks"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    title: Mapped[str] = mapped_column(String(200))
    audio_key: Mapped[str] = mapped_column(String(200))
    image_key: Mapped[str | None] = mapped_column(String(200), nullable=True)
    duration_seconds: Mapped[float | None] = mapped_column(Float, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


def make_engine(url: str) -> Engine:
    """An engine for DATABASE_URL (already normalised by settings.database_url)."""
    if url.startswith("postgresql"):
        # Fail fast when the server is unreachable rather than hang a health check.
        return create_engine(url, pool_pre_ping=True, connect_args={"connect_timeout": 5})
    return create_engine(url)


def migration_head(engine: Engine) -> str | None:
    """The alembic revision the database is at (None before the first migration)."""
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()
