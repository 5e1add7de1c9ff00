"""legal rules, second round (issue 21): sub-processor link authorisation (Art. 28(2)) and the controller's
published purposes

Revision ID: 0006_legal_rules
Revises: 0005_registry_revision
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0006_legal_rules"
down_revision: str | None = "0005_registry_revision"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Existing links were all approved one by one: "specific" keeps their meaning (in effect from approved_on).
    op.add_column(
        "sub_processor_link",
        sa.Column("authorisation", sa.String(length=16), nullable=False, server_default="specific"),
    )
    op.add_column("sub_processor_link", sa.Column("notified_on", sa.Date(), nullable=True))
    op.add_column("sub_processor_link", sa.Column("objected_on", sa.Date(), nullable=True))
    op.create_check_constraint(
        "sub_processor_link_authorisation", "sub_processor_link", "authorisation IN ('specific','general')"
    )
    op.add_column("controller_profile", sa.Column("published_purposes", postgresql.ARRAY(sa.Text()), nullable=True))


def downgrade() -> None:
    op.drop_column("controller_profile", "published_purposes")
    op.drop_constraint("sub_processor_link_authorisation", "sub_processor_link", type_="check")
    op.drop_column("sub_processor_link", "objected_on")
    op.drop_column("sub_processor_link", "notified_on")
    op.drop_column("sub_processor_link", "authorisation")
