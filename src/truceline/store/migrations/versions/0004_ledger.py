"""tamper-evident ledger: hash-chained entries, the head, daily Merkle roots

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ledger_entries",
        sa.Column("seq", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("ref", sa.String(160), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("entry_hash", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("seq"),
    )
    op.create_index("ix_ledger_day", "ledger_entries", ["day"])
    op.create_index("ix_ledger_ref", "ledger_entries", ["ref"])
    head = op.create_table(
        "ledger_head",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("entry_hash", sa.String(64), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    # The one head row exists from the start, so appenders only ever lock it (never race to create it).
    op.bulk_insert(head, [{"id": 1, "seq": 0, "entry_hash": "0" * 64, "recorded_at": None}])
    op.create_table(
        "ledger_roots",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("first_seq", sa.Integer(), nullable=False),
        sa.Column("last_seq", sa.Integer(), nullable=False),
        sa.Column("n_entries", sa.Integer(), nullable=False),
        sa.Column("root", sa.String(64), nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("day"),
    )


def downgrade() -> None:
    op.drop_table("ledger_roots")
    op.drop_table("ledger_head")
    op.drop_index("ix_ledger_ref", table_name="ledger_entries")
    op.drop_index("ix_ledger_day", table_name="ledger_entries")
    op.drop_table("ledger_entries")
