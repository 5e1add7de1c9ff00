"""party.international_organisation: a party may be an international organisation (Art. 4(26))

Revision ID: 0015_international_organisation
Revises: 0014_decision_log_writers
Create Date: 2026-12-06

A share to an international organisation is a transfer (Art. 44) wherever its office is, so the guard refuses it
(RECIPIENT_INTERNATIONAL_ORGANISATION). Every party written before is not one (false).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015_international_organisation"
down_revision: str | None = "0014_decision_log_writers"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "party",
        sa.Column("international_organisation", sa.Boolean(), nullable=False, server_default=sa.false()),
    )


def downgrade() -> None:
    op.drop_column("party", "international_organisation")
