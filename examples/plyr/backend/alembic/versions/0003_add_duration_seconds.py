"""add duration_seconds to tracks, which already hold rows

Existing tracks get NULL until the worker measures them (it enqueues every unmeasured
track when it starts). Downgrading drops the column and every measured duration.

Revision ID: 0003
Revises: 0002
Create Date: 2025-11-25 12:20:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

# What downgrade() destroys, as "table.column" and "table": rollback reads these to
# refuse a data-losing downgrade unless it is asked for.
DROPS_COLUMNS: list[str] = ["tracks.duration_seconds"]
DROPS_TABLES: list[str] = []


def upgrade() -> None:
    with op.batch_alter_table("tracks") as batch:
        batch.add_column(sa.Column("duration_seconds", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("tracks") as batch:
        batch.drop_column("duration_seconds")
