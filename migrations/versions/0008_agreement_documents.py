"""agreement documents: the signed PDF on file, and the size of an agreement's document

Revision ID: 0008_agreement_documents
Revises: 0007_append_only_log
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008_agreement_documents"
down_revision: str | None = "0007_append_only_log"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("agreement", sa.Column("document_size", sa.BigInteger(), nullable=True))
    op.create_table(
        "agreement_document",
        sa.Column("agreement_id", sa.Integer(), nullable=False),
        sa.Column("content", sa.LargeBinary(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("filename", sa.String(length=255), nullable=False),
        sa.Column("uploaded_by", sa.String(length=200), nullable=False),
        sa.Column("uploaded_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["agreement_id"], ["agreement.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("agreement_id"),
    )


def downgrade() -> None:
    op.drop_table("agreement_document")
    op.drop_column("agreement", "document_size")
