"""reminders: due reminders and calendar feed tokens (placeholder, filled by the reminders work)

Revision ID: 0003_reminders
Revises: 0002_guard
Create Date: 2026-11-25
"""

from collections.abc import Sequence

revision: str = "0003_reminders"
down_revision: str | None = "0002_guard"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
