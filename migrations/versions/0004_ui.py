"""web UI: users, server-side sessions, generated secrets

Revision ID: 0004_ui
Revises: 0003_reminders
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_ui"
down_revision: str | None = "0003_reminders"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "ui_user",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("email", sa.String(length=254), nullable=False),
        sa.Column("password_hash", sa.String(length=200), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("failed_logins", sa.Integer(), nullable=False),
        sa.Column("locked_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_ui_user_email", "ui_user", ["email"], unique=True)
    op.create_table(
        "ui_session",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("token_sha256", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.Integer(), sa.ForeignKey("ui_user.id", ondelete="CASCADE"), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_ui_session_token_sha256", "ui_session", ["token_sha256"], unique=True)
    op.create_index("ix_ui_session_user_id", "ui_session", ["user_id"])
    op.create_table(
        "ui_secret",
        sa.Column("name", sa.String(length=64), primary_key=True),
        sa.Column("value", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("ui_secret")
    op.drop_index("ix_ui_session_user_id", table_name="ui_session")
    op.drop_index("ix_ui_session_token_sha256", table_name="ui_session")
    op.drop_table("ui_session")
    op.drop_index("ix_ui_user_email", table_name="ui_user")
    op.drop_table("ui_user")
