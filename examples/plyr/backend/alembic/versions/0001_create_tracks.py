"""create tracks

Revision ID: 0001
Revises:
Create Date: 2025-11-25 12:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# What downgrade() destroys, as "table.column" and "table": rollback reads these to
# refuse a data-losing downgrade unless it is asked for.
DROPS_COLUMNS: list[str] = []
DROPS_TABLES: list[str] = ["tracks"]


def upgrade() -> None:
    op.create_table(
        "tracks",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("audio_key", sa.String(200), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.func.now(),
            nullable=False,
        ),
    )


def downgrade() -> None:
    op.drop_table("tracks")
