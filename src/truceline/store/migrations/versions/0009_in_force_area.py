"""incidents carry two labels: ``in_force`` and ``in_area`` (nullable booleans)

Revision ID: 0009
Revises: 0008

``in_force``: the agreement was in force on the report's day; ``in_area``: the report lies in the
agreement's area of application. The rule engine judges neither kind of report (no finding); they
are stored and counted apart. Existing rows:

- ``in_area`` is computed: the adjudication stored then already left ``side_party`` empty exactly
  for reports outside the area of application (side 0), so ``in_area = side_party <> ''``.
- ``in_force`` stays NULL (unknown): whether the agreement was in force on a stored day needs the
  agreement's dates, which live in its files, not in the database; and findings stored for a day
  before entry into force were made by the engine of the time and stay as the ledger recorded
  them. Filters on ``in_force`` (true or false) leave such rows out.
- Both labels come back from the ledger where its latest ``report`` entry of the incident holds
  them (a database migrated down past 0009 and up again): the ledger records them since 0009.
"""

from __future__ import annotations

import json

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("incidents") as b:
        b.add_column(sa.Column("in_force", sa.Boolean(), nullable=True))
        b.add_column(sa.Column("in_area", sa.Boolean(), nullable=True))
    incidents = sa.table(
        "incidents", sa.column("side_party", sa.String), sa.column("in_area", sa.Boolean)
    )
    op.execute(incidents.update().values(in_area=incidents.c.side_party != ""))
    _labels_from_ledger()


def _labels_from_ledger() -> None:
    """Set each incident's labels to those of its latest ``report`` entry that holds them."""
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
        .where(entries.c.kind == "report", entries.c.body.like('%"in_force":%'))
        .order_by(entries.c.seq)
    )
    latest: dict[int, tuple[bool, bool]] = {}
    for ref, body in conn.execute(q):
        c = json.loads(body).get("content") or {}
        force, area = c.get("in_force"), c.get("in_area")
        if isinstance(force, bool) and isinstance(area, bool) and ref.startswith("incident:"):
            latest[int(ref.split(":", 1)[1])] = (force, area)
    if not latest:
        return
    incidents = sa.table(
        "incidents",
        sa.column("pk", sa.Integer),
        sa.column("in_force", sa.Boolean),
        sa.column("in_area", sa.Boolean),
    )
    stmt = (
        incidents.update()
        .where(incidents.c.pk == sa.bindparam("k"))
        .values(in_force=sa.bindparam("f"), in_area=sa.bindparam("a"))
    )
    conn.execute(stmt, [{"k": k, "f": f, "a": a} for k, (f, a) in latest.items()])


def downgrade() -> None:
    # In place (SQLite >= 3.35 drops a column itself): batch mode's usual copy of the table would
    # drop the old one, and dropping ``incidents`` deletes its findings (ON DELETE CASCADE).
    with op.batch_alter_table("incidents", recreate="never") as b:
        b.drop_column("in_area")
        b.drop_column("in_force")
