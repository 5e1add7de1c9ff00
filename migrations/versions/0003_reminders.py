"""reminders: due reminders and calendar feed tokens

Revision ID: 0003_reminders
Revises: 0002_guard
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0003_reminders"
down_revision: str | None = "0002_guard"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "reminder",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("agreement_id", sa.Integer(), nullable=False),
        sa.Column("sub_processor_id", sa.Integer(), nullable=True),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("due_date", sa.Date(), nullable=False),
        sa.Column("threshold_date", sa.Date(), nullable=False),
        sa.Column("days_before", sa.Integer(), nullable=False),
        sa.Column("channel", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("recipient", sqlmodel.sql.sqltypes.AutoString(length=2048), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("cancelled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sqlmodel.sql.sqltypes.AutoString(length=2000), nullable=True),
        sa.ForeignKeyConstraint(["agreement_id"], ["agreement.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["sub_processor_id"], ["party.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_reminder_agreement_id"), "reminder", ["agreement_id"], unique=False)
    op.create_index(
        "reminder_once",
        "reminder",
        ["agreement_id", sa.text("coalesce(sub_processor_id, 0)"), "kind", "threshold_date", "channel"],
        unique=True,
    )
    op.create_index(
        "reminder_pending",
        "reminder",
        ["next_attempt_at"],
        unique=False,
        postgresql_where=sa.text("sent_at IS NULL AND cancelled_at IS NULL"),
    )
    op.create_table(
        "calendar_feed",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("token_sha256", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("created_by", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_calendar_feed_name"), "calendar_feed", ["name"], unique=True)
    op.create_index(op.f("ix_calendar_feed_token_sha256"), "calendar_feed", ["token_sha256"], unique=True)


def downgrade() -> None:
    op.drop_index(op.f("ix_calendar_feed_token_sha256"), table_name="calendar_feed")
    op.drop_index(op.f("ix_calendar_feed_name"), table_name="calendar_feed")
    op.drop_table("calendar_feed")
    op.drop_index(
        "reminder_pending", table_name="reminder", postgresql_where=sa.text("sent_at IS NULL AND cancelled_at IS NULL")
    )
    op.drop_index("reminder_once", table_name="reminder")
    op.drop_index(op.f("ix_reminder_agreement_id"), table_name="reminder")
    op.drop_table("reminder")
