"""data subjects' rights: trials in the decision log, erasable subject links, restrictions, Art. 19 notifications

Revision ID: 0017_subject_rights
Revises: 0019_operations
Create Date: 2026-12-06

- `guard_decision.trial`: a decision taken on the UI's try-a-share page, kept as evidence, never a share. Added
  with a constant default, so PostgreSQL writes no row (the log's append-only triggers are not touched); an
  entry logged before this revision reads false, and its hash (which does not name `trial`) still verifies.
- `decision_subject`: which person an entry named (keyed digest) and the random salt of the commitment its
  hashed request holds instead of the digest. Outside the hash and the append-only log, so that an erasure
  (Art. 17) can delete a person's rows and leave the chain verifying.
- `restriction` (Art. 18), read by the guard like objections (its own change counter and write lock).
- `subject_notification` (Art. 19): one row per recipient and channel, the evidence of a notification.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import UUID

revision: str = "0017_subject_rights"
down_revision: str | None = "0019_operations"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("guard_decision", sa.Column("trial", sa.Boolean(), server_default=sa.false(), nullable=False))
    op.create_table(
        "decision_subject",
        sa.Column("decision_id", UUID(as_uuid=True), primary_key=True),
        sa.Column("subject_digest", sa.String(length=64), nullable=False),
        sa.Column("salt", sa.String(length=32), nullable=False),
        sa.CheckConstraint("subject_digest ~ '^[0-9a-f]{64}$'", name="decision_subject_digest_only"),
    )
    op.create_index("decision_subject_digest", "decision_subject", ["subject_digest"])

    op.execute("CREATE SEQUENCE restriction_change_counter")
    op.create_table(
        "restriction",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("subject_digest", sa.String(length=64), nullable=False),
        sa.Column("received_on", sa.Date(), nullable=False),
        sa.Column("source", sa.String(length=200), nullable=False),
        sa.Column("recorded_by", sa.String(length=200), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("lifted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("lifted_by", sa.String(length=200), nullable=True),
        sa.Column(
            "change_seq",
            sa.BigInteger(),
            server_default=sa.text("nextval('restriction_change_counter')"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.CheckConstraint("subject_digest ~ '^[0-9a-f]{64}$'", name="restriction_digest_only"),
    )
    op.execute("ALTER SEQUENCE restriction_change_counter OWNED BY restriction.change_seq")
    op.create_index("restriction_subject", "restriction", ["subject_digest", "id"])
    op.create_index("restriction_change_seq", "restriction", ["change_seq"], unique=True)

    op.create_table(
        "subject_notification",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("batch", UUID(as_uuid=True), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("party", sa.String(length=64), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("address", sa.String(length=2000), nullable=True),
        sa.Column("language", sa.String(length=8), nullable=False),
        # The identifier the recipient needs to find the person: held only until delivered or given up.
        sa.Column("message", sa.dialects.postgresql.JSONB(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("requested_by", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.CheckConstraint(
            "action IN ('rectification', 'erasure', 'restriction')", name="subject_notification_action_known"
        ),
        sa.CheckConstraint(
            "status IN ('sent', 'pending', 'failed', 'no_contact')", name="subject_notification_status_known"
        ),
    )
    op.create_index("subject_notification_batch", "subject_notification", ["batch", "id"])
    op.create_index(
        "subject_notification_due",
        "subject_notification",
        ["next_attempt_at", "id"],
        postgresql_where=sa.text("status = 'pending'"),
    )


def downgrade() -> None:
    op.drop_table("subject_notification")
    op.drop_table("restriction")
    op.drop_table("decision_subject")
    op.drop_column("guard_decision", "trial")
