"""incidents carry ``withdrawn_at``: a report its source withdrew (ACLED's deletions list)

Revision ID: 0011
Revises: 0010

A withdrawn report is kept (its row, its revisions, the ledger's entries) but counts no more: its
findings are withdrawn (kept in ``incident_revisions`` with the content they judged) and lists,
counts, maps and reports leave it out. ``withdrawn_at`` is the time the source withdrew it (ACLED's
``deleted_timestamp``); NULL: a live report. A database migrated down past 0011 and up again gets
the times back from the ledger, whose ``report`` entries record them.
"""

from __future__ import annotations

import datetime as dt
import json

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("incidents", sa.Column("withdrawn_at", sa.DateTime(timezone=True), nullable=True))
    conn = op.get_bind()
    entries = sa.table(
        "ledger_entries",
        sa.column("seq", sa.Integer),
        sa.column("kind", sa.String),
        sa.column("ref", sa.String),
        sa.column("body", sa.Text),
    )
    q = (
        sa.select(entries.c.ref, entries.c.body)
        .where(entries.c.kind == "report", entries.c.body.like('%"withdrawn_at":%'))
        .order_by(entries.c.seq)
    )
    latest: dict[int, dt.datetime | None] = {}
    for ref, body in conn.execute(q):
        c = json.loads(body).get("content") or {}
        if ref.startswith("incident:") and "withdrawn_at" in c:
            w = c["withdrawn_at"]
            latest[int(ref.split(":", 1)[1])] = dt.datetime.fromisoformat(w) if w else None
    todo = [{"k": k, "w": w} for k, w in latest.items() if w is not None]
    if todo:
        incidents = sa.table(
            "incidents",
            sa.column("pk", sa.Integer),
            sa.column("withdrawn_at", sa.DateTime(timezone=True)),
        )
        op.get_bind().execute(
            incidents.update()
            .where(incidents.c.pk == sa.bindparam("k"))
            .values(withdrawn_at=sa.bindparam("w")),
            todo,
        )


def downgrade() -> None:
    # In place: a batch copy of ``incidents`` would delete its findings (ON DELETE CASCADE).
    with op.batch_alter_table("incidents", recreate="never") as b:
        b.drop_column("withdrawn_at")
