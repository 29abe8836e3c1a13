"""add image_key to tracks: a cover image in the images bucket

Revision ID: 0002
Revises: 0001
Create Date: 2025-11-25 12:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

# What downgrade() destroys, as "table.column" and "table": rollback reads these to
# refuse a data-losing downgrade unless it is asked for.
DROPS_COLUMNS: list[str] = ["tracks.image_key"]
DROPS_TABLES: list[str] = []


def upgrade() -> None:
    with op.batch_alter_table("tracks") as batch:
        batch.add_column(sa.Column("image_key", sa.String(200), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("tracks") as batch:
        batch.drop_column("image_key")
