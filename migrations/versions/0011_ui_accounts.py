"""ui accounts: login throttling by address and account instead of a lock-out, and passwords an admin reset

Revision ID: 0011_ui_accounts
Revises: 0010_user_language
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011_ui_accounts"
down_revision: str | None = "0010_user_language"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "ui_login_throttle",
        sa.Column("key", sa.String(length=80), primary_key=True),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("next_try_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_failure_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.add_column("ui_user", sa.Column("must_change_password", sa.Boolean(), nullable=False, server_default=sa.false()))
    op.alter_column("ui_user", "must_change_password", server_default=None)
    op.drop_column("ui_user", "locked_until")
    op.drop_column("ui_user", "failed_logins")


def downgrade() -> None:
    op.add_column("ui_user", sa.Column("failed_logins", sa.Integer(), nullable=False, server_default=sa.text("0")))
    op.alter_column("ui_user", "failed_logins", server_default=None)
    op.add_column("ui_user", sa.Column("locked_until", sa.DateTime(timezone=True), nullable=True))
    op.drop_column("ui_user", "must_change_password")
    op.drop_table("ui_login_throttle")
