"""decision log writers: one hash chain per writer, a global order (the Merkle leaves) assigned by the sealer

Revision ID: 0014_decision_log_writers
Revises: 0013_decision_log_indexes
Create Date: 2026-11-28

Before: one chain, one head row; every instance's group commit had to know the chain's head, so appends of
several instances ran one after another (bench/instances.py). After: each writer (one per instance's writer
task, or per CLI command) chains only its own entries (`writer`, gapless `wseq`) and moves only its own row of
`guard_log_writer`; `seq` is taken from a sequence in the INSERT (unique, not gapless, not hashed). The order
the RFC 6962 tree needs is assigned off the hot path by the checkpoint writer, in `guard_log_leaf`.

The entries already logged become the chain of the writer ``legacy``: `wseq` = `seq`, their hashes (which
cover `seq`) unchanged; the leaves the existing checkpoints signed (leaf i = entry i + 1) are recorded as such,
so every stored or witnessed checkpoint still verifies.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014_decision_log_writers"
down_revision: str | None = "0013_decision_log_indexes"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

LEGACY_WRITER = "legacy"  # (ledger/checkpoint.py LEGACY_WRITER)

WRITER_FORWARD = """
CREATE FUNCTION guard_log_writer_forward() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.writer <> OLD.writer OR NEW.last_wseq < OLD.last_wseq
       OR (NEW.last_wseq = OLD.last_wseq AND NEW.last_hash <> OLD.last_hash) THEN
        RAISE EXCEPTION 'a decision log writer''s head only moves forward: % to % is refused',
            OLD.last_wseq, NEW.last_wseq USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NEW;
END
$$
"""
REFUSE_FN = "guard_log_refuse_change"  # (migration 0007)
TRIGGERS = [
    ("guard_log_writer_no_delete", "guard_log_writer", "BEFORE DELETE", "ROW", REFUSE_FN),
    ("guard_log_writer_no_truncate", "guard_log_writer", "BEFORE TRUNCATE", "STATEMENT", REFUSE_FN),
    ("guard_log_writer_forward", "guard_log_writer", "BEFORE UPDATE", "ROW", "guard_log_writer_forward"),
    ("guard_log_leaf_no_change", "guard_log_leaf", "BEFORE UPDATE OR DELETE", "ROW", REFUSE_FN),
    ("guard_log_leaf_no_truncate", "guard_log_leaf", "BEFORE TRUNCATE", "STATEMENT", REFUSE_FN),
]
OLD_HEAD_TRIGGERS = [
    ("guard_decision_head_no_delete", "BEFORE DELETE", "ROW", REFUSE_FN),
    ("guard_decision_head_no_truncate", "BEFORE TRUNCATE", "STATEMENT", REFUSE_FN),
    ("guard_decision_head_forward", "BEFORE UPDATE", "ROW", "guard_log_head_forward"),
]


def upgrade() -> None:
    op.create_table(
        "guard_log_writer",
        sa.Column("writer", sa.String(length=64), nullable=False),
        sa.Column("last_wseq", sa.BigInteger(), nullable=False),
        sa.Column("last_hash", sa.String(length=64), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_by", sa.String(length=200), nullable=False),
        sa.PrimaryKeyConstraint("writer"),
    )
    op.execute(
        "INSERT INTO guard_log_writer (writer, last_wseq, last_hash, started_at, started_by)"
        f" SELECT '{LEGACY_WRITER}', last_seq, last_hash, now(), 'the single chain before migration 0014'"
        " FROM guard_decision_head WHERE id = 1"
    )
    op.add_column("guard_decision", sa.Column("writer", sa.String(length=64), nullable=True))
    op.add_column("guard_decision", sa.Column("wseq", sa.BigInteger(), nullable=True))
    # The only rewrite of logged rows there is: it adds the columns the old rows' hashes never covered.
    op.execute("ALTER TABLE guard_decision DISABLE TRIGGER guard_decision_no_change")
    op.execute(f"UPDATE guard_decision SET writer = '{LEGACY_WRITER}', wseq = seq")
    op.execute("ALTER TABLE guard_decision ENABLE TRIGGER guard_decision_no_change")
    op.alter_column("guard_decision", "writer", nullable=False)
    op.alter_column("guard_decision", "wseq", nullable=False)
    op.create_index("guard_decision_writer_wseq", "guard_decision", ["writer", "wseq"], unique=True)
    op.execute("CREATE SEQUENCE guard_decision_seq OWNED BY guard_decision.seq")
    op.execute("SELECT setval('guard_decision_seq', coalesce(max(seq), 0) + 1, false) FROM guard_decision")
    op.alter_column("guard_decision", "seq", server_default=sa.text("nextval('guard_decision_seq')"))

    op.create_table(
        "guard_log_leaf",
        sa.Column("leaf_index", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("leaf_index"),
    )
    op.create_index("guard_log_leaf_seq", "guard_log_leaf", ["seq"], unique=True)
    op.execute(
        "INSERT INTO guard_log_leaf (leaf_index, seq) SELECT seq - 1, seq FROM guard_decision"
        " WHERE seq <= (SELECT coalesce(max(size), 0) FROM guard_checkpoint) ORDER BY seq"
    )
    # New checkpoints sign every writer's head (a digest in the note, the heads themselves stored here);
    # the old ones keep their single chain hash.
    op.alter_column("guard_checkpoint", "chain_hash", nullable=True)
    op.add_column("guard_checkpoint", sa.Column("heads", sa.dialects.postgresql.JSONB(), nullable=True))

    op.execute(WRITER_FORWARD)
    for name, table, when, level, function in TRIGGERS:
        op.execute(f"CREATE TRIGGER {name} {when} ON {table} FOR EACH {level} EXECUTE FUNCTION {function}()")
    for name, *_ in OLD_HEAD_TRIGGERS:
        op.execute(f"DROP TRIGGER {name} ON guard_decision_head")
    op.drop_table("guard_decision_head")
    op.execute("DROP FUNCTION guard_log_head_forward()")


def downgrade() -> None:
    # Only a log that is still one chain, signed only by old checkpoints, goes back: nothing logged or signed
    # is dropped.
    op.execute(
        f"""DO $$ BEGIN
        IF EXISTS (SELECT FROM guard_decision WHERE writer <> '{LEGACY_WRITER}')
           OR EXISTS (SELECT FROM guard_checkpoint WHERE chain_hash IS NULL) THEN
            RAISE EXCEPTION 'the decision log has entries of several writers or checkpoints of them: it cannot go back';
        END IF;
        END $$"""
    )
    op.execute(
        """
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
    )
    op.create_table(
        "guard_decision_head",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("last_seq", sa.BigInteger(), nullable=False),
        sa.Column("last_hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.execute(
        "INSERT INTO guard_decision_head (id, last_seq, last_hash)"
        f" SELECT 1, last_wseq, last_hash FROM guard_log_writer WHERE writer = '{LEGACY_WRITER}'"
    )
    for name, when, level, function in OLD_HEAD_TRIGGERS:
        op.execute(
            f"CREATE TRIGGER {name} {when} ON guard_decision_head FOR EACH {level} EXECUTE FUNCTION {function}()"
        )
    for name, table, *_ in TRIGGERS:
        op.execute(f"DROP TRIGGER {name} ON {table}")
    op.execute("DROP FUNCTION guard_log_writer_forward()")
    op.drop_column("guard_checkpoint", "heads")
    op.alter_column("guard_checkpoint", "chain_hash", nullable=False)
    op.drop_table("guard_log_leaf")
    op.alter_column("guard_decision", "seq", server_default=None)
    op.execute("DROP SEQUENCE guard_decision_seq")
    op.drop_index("guard_decision_writer_wseq", table_name="guard_decision")
    op.drop_column("guard_decision", "wseq")
    op.drop_column("guard_decision", "writer")
    op.drop_table("guard_log_writer")
