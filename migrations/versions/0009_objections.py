"""objections by keyed subject digest; the decision log's subject digest and its index

Revision ID: 0009_objections
Revises: 0008_agreement_documents
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009_objections"
down_revision: str | None = "0008_agreement_documents"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("CREATE SEQUENCE objection_change_counter")
    op.create_table(
        "objection",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("subject_digest", sa.String(length=64), nullable=False),
        sa.Column("scope", sa.String(length=32), nullable=False),
        sa.Column("received_on", sa.Date(), nullable=False),
        sa.Column("source", sa.String(length=200), nullable=False),
        sa.Column("recorded_by", sa.String(length=200), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("withdrawn_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("withdrawn_by", sa.String(length=200), nullable=True),
        sa.Column(
            "change_seq", sa.BigInteger(), server_default=sa.text("nextval('objection_change_counter')"), nullable=False
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.CheckConstraint("scope IN ('direct_marketing', 'all')", name="objection_scope_known"),
        sa.CheckConstraint("subject_digest ~ '^[0-9a-f]{64}$'", name="objection_digest_only"),
    )
    op.execute("ALTER SEQUENCE objection_change_counter OWNED BY objection.change_seq")
    op.create_index("objection_subject", "objection", ["subject_digest", "id"])
    op.create_index("objection_change_seq", "objection", ["change_seq"], unique=True)
    # A nullable column without a default: PostgreSQL adds it without rewriting the table, so no row is
    # updated and the log's append-only triggers (0007) are not touched.
    op.add_column("guard_decision", sa.Column("subject_digest", sa.String(length=64), nullable=True))
    op.create_index(
        "guard_decision_subject",
        "guard_decision",
        ["subject_digest", "seq"],
        postgresql_where=sa.text("subject_digest IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("guard_decision_subject", table_name="guard_decision")
    op.drop_column("guard_decision", "subject_digest")
    op.drop_index("objection_change_seq", table_name="objection")
    op.drop_index("objection_subject", table_name="objection")
    op.drop_table("objection")
