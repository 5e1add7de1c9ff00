"""removed agreements keep their signed PDF: an import that removes an agreement moves its document aside

Revision ID: 0020_removed_documents
Revises: 0018_evidence_insider
Create Date: 2026-12-06

`agreement_document` cascades with its agreement, so an import that dropped an agreement lost the signed copy
for good, and restoring the agreement from its history brought back the digest but not the bytes. Before an
agreement row goes, its document is copied here under the agreement's key and digest; a restore whose state
names that digest puts it back. Keyed by (key, digest): removing, restoring and removing again with another
copy on file keeps both.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0020_removed_documents"
down_revision: str | None = "0018_evidence_insider"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "removed_agreement_document",
        sa.Column("agreement_key", sa.String(length=64), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("content", sa.LargeBinary(), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("filename", sa.String(length=255), nullable=False),
        sa.Column("uploaded_by", sa.String(length=200), nullable=False),
        sa.Column("uploaded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("removed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("agreement_key", "sha256"),
    )


def downgrade() -> None:
    # Going back to 0018 drops the copies of removed agreements' documents: that revision has nowhere to keep them.
    op.drop_table("removed_agreement_document")
