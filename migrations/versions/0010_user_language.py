"""UI in Swedish and English: a user's remembered language, and the controller's own words for taxonomy keys

Revision ID: 0010_user_language
Revises: 0009_objections
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0010_user_language"
down_revision: str | None = "0009_objections"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("ui_user", sa.Column("language", sa.String(length=8), nullable=True))
    op.add_column("controller_profile", sa.Column("vocabulary", postgresql.JSONB(), nullable=True))


def downgrade() -> None:
    op.drop_column("controller_profile", "vocabulary")
    op.drop_column("ui_user", "language")
