"""guard: decision log (placeholder, filled by the guard work)

Revision ID: 0002_guard
Revises: 0001_registry_core
Create Date: 2026-11-25
"""

from collections.abc import Sequence

revision: str = "0002_guard"
down_revision: str | None = "0001_registry_core"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
