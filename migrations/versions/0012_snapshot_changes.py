"""snapshot changes: which parties and agreements each registry revision touched

Revision ID: 0012_snapshot_changes
Revises: 0011_ui_accounts
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0012_snapshot_changes"
down_revision: str | None = "0011_ui_accounts"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "registry_change",
        sa.Column("revision", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("parties", postgresql.ARRAY(sa.Text()), nullable=False),
        sa.Column("agreements", postgresql.ARRAY(sa.Text()), nullable=False),
        sa.Column("everything", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("revision"),
    )


def downgrade() -> None:
    op.drop_table("registry_change")
