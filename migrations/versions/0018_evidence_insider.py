"""evidence against an insider: tampering alarms, the shared subject key's fingerprint, no backdated entries

Revision ID: 0018_evidence_insider
Revises: 0017_subject_rights
Create Date: 2026-12-06

- `guard_evidence_alarm`: evidence that the decision log was tampered with; while one is open every instance's
  guard fails closed. Rows are never deleted; only an open alarm's resolution is written, once.
- `guard_log_node`: stored interior nodes of the Merkle tree, so that proofs are read in O(log n).
- `guard_subject_key`: the fingerprint of the subject key every instance must share (guard/subjects.py).
- A writer's registration (`guard_log_writer.started_at`) is the moment it was inserted, never moved; an entry
  dated before its writer's registration, or before the last checkpoint was signed, by more than
  BACKDATING_TOLERANCE (a queued batch's wait and the clocks' skew) is refused.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0018_evidence_insider"
down_revision: str | None = "0017_subject_rights"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BACKDATING_TOLERANCE = "5 minutes"  # (guard/log.py BACKDATING_TOLERANCE)

NOT_BACKDATED = f"""
CREATE FUNCTION guard_decision_not_backdated() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    bad record;
BEGIN
    -- A writer registered by this very statement is not visible yet: it was registered now.
    SELECT i.writer, i.wseq, i.decided_at, coalesce(w.started_at, now()) AS registered,
           (SELECT c.created_at FROM guard_checkpoint c ORDER BY c.size DESC LIMIT 1) AS sealed
    INTO bad
    FROM inserted i LEFT JOIN guard_log_writer w ON w.writer = i.writer
    WHERE i.decided_at < coalesce(w.started_at, now()) - interval '{BACKDATING_TOLERANCE}'
       OR i.decided_at < (SELECT c.created_at FROM guard_checkpoint c ORDER BY c.size DESC LIMIT 1)
                         - interval '{BACKDATING_TOLERANCE}'
    LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'a backdated decision log entry is refused: entry % of writer % is dated %, before its'
            ' writer''s registration (%) or the last checkpoint (%)',
            bad.wseq, bad.writer, bad.decided_at, bad.registered, bad.sealed
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NULL;
END
$$
"""
WRITER_REGISTERED_NOW = f"""
CREATE FUNCTION guard_log_writer_registered_now() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.started_at < now() - interval '{BACKDATING_TOLERANCE}' THEN
        RAISE EXCEPTION 'a decision log writer is registered when it starts: % is refused', NEW.started_at
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NEW;
END
$$
"""
WRITER_FORWARD = """
CREATE OR REPLACE FUNCTION guard_log_writer_forward() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.writer <> OLD.writer OR NEW.last_wseq < OLD.last_wseq
       OR (NEW.last_wseq = OLD.last_wseq AND NEW.last_hash <> OLD.last_hash) THEN
        RAISE EXCEPTION 'a decision log writer''s head only moves forward: % to % is refused',
            OLD.last_wseq, NEW.last_wseq USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF NEW.started_at <> OLD.started_at OR NEW.started_by <> OLD.started_by THEN
        RAISE EXCEPTION 'a decision log writer''s registration does not change'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NEW;
END
$$
"""
OLD_WRITER_FORWARD = """
CREATE OR REPLACE FUNCTION guard_log_writer_forward() RETURNS trigger LANGUAGE plpgsql AS $$
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
ALARM_RESOLVED_ONCE = """
CREATE FUNCTION guard_evidence_alarm_resolved_once() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.resolved_at IS NOT NULL OR NEW.resolved_at IS NULL OR NEW.resolved_by IS NULL
       OR NEW.id <> OLD.id OR NEW.raised_at <> OLD.raised_at OR NEW.raised_by <> OLD.raised_by
       OR NEW.problem <> OLD.problem THEN
        RAISE EXCEPTION 'an evidence alarm is kept as raised; only its resolution is written, once'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NEW;
END
$$
"""
# Every instance's evidence watch LISTENs here: a new alarm, or one resolved, reaches them at once.
ALARM_NOTIFY = """
CREATE FUNCTION guard_evidence_alarm_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('guard_evidence', NEW.id::text);
    RETURN NULL;
END
$$
"""
# A registry table changed by plain SQL (not through the service, which records the change and NOTIFYs with its
# revision in the same transaction: registry.db.notify_registry_changed marks it) reaches every guard at commit:
# a notice without a revision, which makes each instance read the registry again.
NOTIFY_PLAIN_SQL = """
CREATE FUNCTION registry_notify_plain_sql_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('registry.change_announced', true) IS DISTINCT FROM 'on' THEN
        PERFORM pg_notify('registry_changed', 'plain SQL on ' || TG_TABLE_NAME);
    END IF;
    RETURN NULL;
END
$$
"""
REGISTRY_TABLES = ("party", "location", "sub_processor_link", "agreement", "controller_profile")
REFUSE_FN = "guard_log_refuse_change"  # (migration 0007)
TRIGGERS = [
    (
        "guard_decision_not_backdated",
        "guard_decision",
        "AFTER INSERT",
        "STATEMENT",
        "guard_decision_not_backdated",
        "REFERENCING NEW TABLE AS inserted ",
    ),
    (
        "guard_log_writer_registered_now",
        "guard_log_writer",
        "BEFORE INSERT",
        "ROW",
        "guard_log_writer_registered_now",
        "",
    ),
    ("guard_log_node_no_change", "guard_log_node", "BEFORE UPDATE OR DELETE", "ROW", REFUSE_FN, ""),
    ("guard_log_node_no_truncate", "guard_log_node", "BEFORE TRUNCATE", "STATEMENT", REFUSE_FN, ""),
    ("guard_evidence_alarm_no_delete", "guard_evidence_alarm", "BEFORE DELETE", "ROW", REFUSE_FN, ""),
    ("guard_evidence_alarm_no_truncate", "guard_evidence_alarm", "BEFORE TRUNCATE", "STATEMENT", REFUSE_FN, ""),
    (
        "guard_evidence_alarm_resolved_once",
        "guard_evidence_alarm",
        "BEFORE UPDATE",
        "ROW",
        "guard_evidence_alarm_resolved_once",
        "",
    ),
    (
        "guard_evidence_alarm_notify",
        "guard_evidence_alarm",
        "AFTER INSERT OR UPDATE",
        "ROW",
        "guard_evidence_alarm_notify",
        "",
    ),
]
FUNCTIONS = [
    "registry_notify_plain_sql_change",
    "guard_decision_not_backdated",
    "guard_log_writer_registered_now",
    "guard_evidence_alarm_resolved_once",
    "guard_evidence_alarm_notify",
]


def upgrade() -> None:
    op.create_table(
        "guard_evidence_alarm",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("raised_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("raised_by", sa.String(length=200), nullable=False),
        sa.Column("problem", sa.Text(), nullable=False),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("resolved_by", sa.String(length=200), nullable=True),
        sa.Column("resolution", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "guard_log_node",
        sa.Column("level", sa.SmallInteger(), autoincrement=False, nullable=False),
        sa.Column("index", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("level", "index"),
    )
    op.create_table(
        "guard_subject_key",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    for function in (NOT_BACKDATED, WRITER_REGISTERED_NOW, WRITER_FORWARD, ALARM_RESOLVED_ONCE, ALARM_NOTIFY):
        op.execute(function)
    for name, table, when, level, function, referencing in TRIGGERS:
        op.execute(
            f"CREATE TRIGGER {name} {when} ON {table} {referencing}FOR EACH {level} EXECUTE FUNCTION {function}()"
        )
    op.execute(NOTIFY_PLAIN_SQL)
    for table in REGISTRY_TABLES:
        # A constraint trigger, deferred to commit: by then the service's own writes have marked themselves.
        op.execute(
            f"CREATE CONSTRAINT TRIGGER {table}_plain_sql_notify AFTER INSERT OR UPDATE OR DELETE ON {table}"
            " DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION registry_notify_plain_sql_change()"
        )


def downgrade() -> None:
    for table in REGISTRY_TABLES:
        op.execute(f"DROP TRIGGER {table}_plain_sql_notify ON {table}")
    for name, table, *_ in TRIGGERS:
        op.execute(f"DROP TRIGGER {name} ON {table}")
    for function in FUNCTIONS:
        op.execute(f"DROP FUNCTION {function}()")
    op.execute(OLD_WRITER_FORWARD)
    op.drop_table("guard_subject_key")
    op.drop_table("guard_log_node")
    op.drop_table("guard_evidence_alarm")
