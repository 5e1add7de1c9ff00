"""the decision log's rollup: per-day and per-month counts of the sealed decisions, per-hour sequence bounds

Revision ID: 0021_decision_rollup
Revises: 0023_witness_cosignatures
Create Date: 2026-12-06

The Art. 30 record counted a year of the log per recipient on every view (475 ms at 257,000 decisions, linear);
a page of a period that ended in the past read the whole period's index. The checkpoint writer now counts what it
seals into these tables (ledger/rollup.py), readers add the unsealed tail. They are derived data: the upgrade
counts the entries already sealed (in batches of leaves), `registry guard rollup --rebuild` recounts them.
The statements are copied from ledger/rollup.py as they stood, so that this migration never changes.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0021_decision_rollup"
down_revision: str | None = "0023_witness_cosignatures"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BATCH = 100_000
CHOSEN = "d.seq IN (SELECT seq FROM guard_log_leaf WHERE leaf_index >= :start AND leaf_index < :stop)"
CATEGORIES_OF = (
    "jsonb_array_elements_text(CASE WHEN jsonb_typeof(d.request->'data_categories') = 'array'"
    " THEN d.request->'data_categories' ELSE '[]'::jsonb END) AS c(category)"
)
SPANS = "CROSS JOIN (VALUES (false), (true)) AS span(whole_month)"
SPAN_DAY = (
    "CASE WHEN span.whole_month THEN date_trunc('month', d.decided_at AT TIME ZONE 'UTC')::date"
    " ELSE (d.decided_at AT TIME ZONE 'UTC')::date END"
)
BACKFILL = [
    f"""
    INSERT INTO guard_decision_daily AS t (day, whole_month, recipient, purpose, destination, allowed, decisions,
                                           last_seq, last_decided_at)
    SELECT {SPAN_DAY}, span.whole_month, d.recipient, coalesce(d.request->>'purpose', ''),
           d.request->>'destination', d.allowed, count(*), max(d.seq), max(d.decided_at)
      FROM guard_decision AS d {SPANS}
     WHERE {CHOSEN} AND NOT d.trial
     GROUP BY 1, 2, 3, 4, 5, 6
    ON CONFLICT (day, whole_month, recipient, purpose, destination, allowed) DO UPDATE
       SET decisions = t.decisions + excluded.decisions,
           last_seq = greatest(t.last_seq, excluded.last_seq),
           last_decided_at = greatest(t.last_decided_at, excluded.last_decided_at)
    """,
    f"""
    INSERT INTO guard_decision_daily_category AS t (day, whole_month, recipient, category, decisions)
    SELECT {SPAN_DAY}, span.whole_month, d.recipient, c.category, count(*)
      FROM guard_decision AS d CROSS JOIN LATERAL {CATEGORIES_OF} {SPANS}
     WHERE {CHOSEN} AND d.allowed AND NOT d.trial AND c.category IS NOT NULL
     GROUP BY 1, 2, 3, 4
    ON CONFLICT (day, whole_month, recipient, category) DO UPDATE SET decisions = t.decisions + excluded.decisions
    """,
    f"""
    INSERT INTO guard_log_hour AS t (hour, last_seq, seq_through)
    SELECT date_trunc('hour', d.decided_at, 'UTC'), max(d.seq), 0
      FROM guard_decision AS d
     WHERE {CHOSEN}
     GROUP BY 1
    ON CONFLICT (hour) DO UPDATE SET last_seq = greatest(t.last_seq, excluded.last_seq)
    """,
    f"""
    INSERT INTO guard_rollup_head AS t (writer, wseq)
    SELECT d.writer, max(d.wseq) FROM guard_decision AS d WHERE {CHOSEN} GROUP BY 1
    ON CONFLICT (writer) DO UPDATE SET wseq = greatest(t.wseq, excluded.wseq)
    """,
]
RUNNING_MAXIMUM = """
UPDATE guard_log_hour AS t SET seq_through = running.through
  FROM (SELECT hour, max(last_seq) OVER (ORDER BY hour) AS through FROM guard_log_hour) AS running
 WHERE t.hour = running.hour
"""


def upgrade() -> None:
    op.create_table(
        "guard_decision_daily",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("whole_month", sa.Boolean(), nullable=False),
        sa.Column("recipient", sa.String(length=200), nullable=False),
        sa.Column("purpose", sa.Text(), nullable=False),
        sa.Column("destination", sa.Text(), nullable=True),
        sa.Column("allowed", sa.Boolean(), nullable=False),
        sa.Column("decisions", sa.BigInteger(), nullable=False),
        sa.Column("last_seq", sa.BigInteger(), nullable=False),
        sa.Column("last_decided_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "guard_decision_daily_group",
        "guard_decision_daily",
        ["whole_month", "day", "recipient", "purpose", "destination", "allowed"],
        unique=True,
        postgresql_nulls_not_distinct=True,
    )
    op.create_table(
        "guard_decision_daily_category",
        sa.Column("whole_month", sa.Boolean(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("recipient", sa.String(length=200), nullable=False),
        sa.Column("category", sa.Text(), nullable=False),
        sa.Column("decisions", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("whole_month", "day", "recipient", "category"),
    )
    op.create_table(
        "guard_log_hour",
        sa.Column("hour", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seq", sa.BigInteger(), nullable=False),
        sa.Column("seq_through", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("hour"),
    )
    op.create_table(
        "guard_rollup_head",
        sa.Column("writer", sa.String(length=64), nullable=False),
        sa.Column("wseq", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("writer"),
    )
    connection = op.get_bind()
    leaves = connection.execute(sa.text("SELECT coalesce(max(leaf_index) + 1, 0) FROM guard_log_leaf")).scalar_one()
    for start in range(0, int(leaves), BATCH):
        for statement in BACKFILL:
            connection.execute(sa.text(statement), {"start": start, "stop": start + BATCH})
    connection.execute(sa.text(RUNNING_MAXIMUM))


def downgrade() -> None:
    op.drop_table("guard_rollup_head")
    op.drop_table("guard_log_hour")
    op.drop_table("guard_decision_daily_category")
    op.drop_index("guard_decision_daily_group", table_name="guard_decision_daily")
    op.drop_table("guard_decision_daily")
