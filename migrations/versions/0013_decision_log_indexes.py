"""decision log indexes: the outcome filter served by partial indexes of the denials, the time filter with seq

Revision ID: 0013_decision_log_indexes
Revises: 0012_snapshot_changes
Create Date: 2026-11-28
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0013_decision_log_indexes"
down_revision: str | None = "0012_snapshot_changes"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The log's pages are newest first by seq (ledger/queries.py list_decisions). The recipient filter already has
# (recipient, seq). Denials are the rare outcome people look for: partial indexes hold only them, so the
# guard's group commit maintains nothing more for an allowed decision (most of them); `allowed` alone is
# served by the primary key scanned backwards, as most entries match it. The time filter gets seq beside
# decided_at, so a period's entries are found and ordered from the index alone.
INDEXES = [
    ("guard_decision_denied", ["seq"], "NOT allowed"),
    ("guard_decision_denied_recipient", ["recipient", "seq"], "NOT allowed"),
    ("guard_decision_decided_at_seq", ["decided_at", "seq"], None),
]


def upgrade() -> None:
    for name, columns, where in INDEXES:
        op.create_index(name, "guard_decision", columns, postgresql_where=where)
    op.drop_index("guard_decision_decided_at", table_name="guard_decision")


def downgrade() -> None:
    op.create_index("guard_decision_decided_at", "guard_decision", ["decided_at"])
    for name, _, _ in INDEXES:
        op.drop_index(name, table_name="guard_decision")
