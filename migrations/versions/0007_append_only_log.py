"""append-only decision log: triggers refuse UPDATE, DELETE and TRUNCATE; the head only moves forward; checkpoints

Revision ID: 0007_append_only_log
Revises: 0006_legal_rules
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0007_append_only_log"
down_revision: str | None = "0006_legal_rules"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Triggers bind every role but the tables' owner acting deliberately (ALTER TABLE … DISABLE TRIGGER needs
# ownership): the service's role, granted INSERT and SELECT only (README), cannot turn them off.
REFUSE = """
CREATE FUNCTION guard_log_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the decision log is append-only: % on % is refused', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END
$$
"""
HEAD_FORWARD = """
CREATE FUNCTION guard_log_head_forward() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.id <> OLD.id OR NEW.last_seq < OLD.last_seq
       OR (NEW.last_seq = OLD.last_seq AND NEW.last_hash <> OLD.last_hash) THEN
        RAISE EXCEPTION 'the decision log head only moves forward: % to % is refused', OLD.last_seq, NEW.last_seq
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NEW;
END
$$
"""
REFUSE_FN, FORWARD_FN = "guard_log_refuse_change", "guard_log_head_forward"
TRIGGERS = [
    ("guard_decision_no_change", "guard_decision", "BEFORE UPDATE OR DELETE", "ROW", REFUSE_FN),
    ("guard_decision_no_truncate", "guard_decision", "BEFORE TRUNCATE", "STATEMENT", REFUSE_FN),
    ("guard_decision_head_no_delete", "guard_decision_head", "BEFORE DELETE", "ROW", REFUSE_FN),
    ("guard_decision_head_no_truncate", "guard_decision_head", "BEFORE TRUNCATE", "STATEMENT", REFUSE_FN),
    ("guard_decision_head_forward", "guard_decision_head", "BEFORE UPDATE", "ROW", FORWARD_FN),
    ("guard_checkpoint_no_change", "guard_checkpoint", "BEFORE UPDATE OR DELETE", "ROW", REFUSE_FN),
    ("guard_checkpoint_no_truncate", "guard_checkpoint", "BEFORE TRUNCATE", "STATEMENT", REFUSE_FN),
]


def upgrade() -> None:
    op.create_table(
        "guard_checkpoint",
        sa.Column("size", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("root_hash", sa.String(length=64), nullable=False),
        sa.Column("chain_hash", sa.String(length=64), nullable=False),
        sa.Column("subtrees", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("size"),
    )
    op.execute(REFUSE)
    op.execute(HEAD_FORWARD)
    for name, table, when, level, function in TRIGGERS:
        op.execute(f"CREATE TRIGGER {name} {when} ON {table} FOR EACH {level} EXECUTE FUNCTION {function}()")


def downgrade() -> None:
    for name, table, *_ in TRIGGERS:
        op.execute(f"DROP TRIGGER {name} ON {table}")
    op.execute("DROP FUNCTION guard_log_head_forward()")
    op.execute("DROP FUNCTION guard_log_refuse_change()")
    op.drop_table("guard_checkpoint")
