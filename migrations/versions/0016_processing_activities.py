"""Processing activities (the privacy policy as code), the controller's contact, and the privacy notice's
publications

Revision ID: 0016_processing_activities
Revises: 0015_international_organisation
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0016_processing_activities"
down_revision: str | None = "0015_international_organisation"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("controller_profile", sa.Column("contact", postgresql.JSONB(), nullable=True))
    op.add_column("controller_profile", sa.Column("processing_activities", postgresql.JSONB(), nullable=True))
    op.create_table(
        "privacy_notice_publication",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("published_by", sa.String(length=200), nullable=False),
        sa.Column("registry_revision", sa.BigInteger(), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("texts", postgresql.JSONB(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("privacy_notice_publication")
    op.drop_column("controller_profile", "processing_activities")
    op.drop_column("controller_profile", "contact")
