"""web UI: users and sessions (placeholder, filled by the UI work)

Revision ID: 0004_ui
Revises: 0003_reminders
Create Date: 2026-11-25
"""

from collections.abc import Sequence

revision: str = "0004_ui"
down_revision: str | None = "0003_reminders"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
