"""witness cosignatures: what a C2SP tlog-witness answered for each checkpoint it cosigned

Revision ID: 0023_witness_cosignatures
Revises: 0020_removed_documents
Create Date: 2026-12-06

`guard_checkpoint_cosignature`: a cosignature line (C2SP tlog-cosignature) a witness returned from
add-checkpoint (ledger/seal.py), beside the checkpoint it signs, so that an auditor holds the witness's word that
the log was append-only up to that size; the latest size a witness cosigned is where the next consistency proof
handed to it starts. Append-only, like the checkpoints.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0023_witness_cosignatures"
down_revision: str | None = "0020_removed_documents"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

REFUSE_FN = "guard_log_refuse_change"  # (migration 0007)
TRIGGERS = [
    ("guard_checkpoint_cosignature_no_change", "BEFORE UPDATE OR DELETE", "ROW"),
    ("guard_checkpoint_cosignature_no_truncate", "BEFORE TRUNCATE", "STATEMENT"),
]


def upgrade() -> None:
    op.create_table(
        "guard_checkpoint_cosignature",
        sa.Column("size", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("cosignature", sa.Text(), nullable=False),
        sa.Column("witness", sa.Text(), nullable=False),
        sa.Column("verified", sa.Boolean(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("size", "cosignature"),
    )
    op.create_index("guard_checkpoint_cosignature_witness", "guard_checkpoint_cosignature", ["witness", "size"])
    for name, when, level in TRIGGERS:
        op.execute(
            f"CREATE TRIGGER {name} {when} ON guard_checkpoint_cosignature FOR EACH {level}"
            f" EXECUTE FUNCTION {REFUSE_FN}()"
        )


def downgrade() -> None:
    for name, *_ in TRIGGERS:
        op.execute(f"DROP TRIGGER {name} ON guard_checkpoint_cosignature")
    op.drop_index("guard_checkpoint_cosignature_witness", table_name="guard_checkpoint_cosignature")
    op.drop_table("guard_checkpoint_cosignature")
