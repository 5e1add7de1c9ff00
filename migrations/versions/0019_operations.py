"""decision log entries record the HTTP request's id

Revision ID: 0019_operations
Revises: 0016_processing_activities
Create Date: 2026-12-06

`guard_decision.request_id`: the id of the request a decision answered (the caller's `X-Request-Id` when it sent
a sane one, else the one the server gave it and returned in that header), as OPA's decision logs record theirs.
Nullable and without a default: the entries already logged keep no value, and their hashes, which never covered
one, are unchanged (an entry's hash covers its request id only when it has one, guard/log.py `entry_content`).
Adding a nullable column rewrites no row, so the append-only triggers are not involved.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0019_operations"
down_revision: str | None = "0016_processing_activities"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("guard_decision", sa.Column("request_id", sa.String(128), nullable=True))


def downgrade() -> None:
    op.drop_column("guard_decision", "request_id")
