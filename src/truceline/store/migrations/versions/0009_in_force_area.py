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
"""

from __future__ import annotations

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


def downgrade() -> None:
    # In place (SQLite >= 3.35 drops a column itself): batch mode's usual copy of the table would
    # drop the old one, and dropping ``incidents`` deletes its findings (ON DELETE CASCADE).
    with op.batch_alter_table("incidents", recreate="never") as b:
        b.drop_column("in_area")
        b.drop_column("in_force")
