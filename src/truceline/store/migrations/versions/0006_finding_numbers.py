"""findings carry their numbers: one nullable column ``numbers`` of JSON text

Revision ID: 0006
Revises: 0005

One column rather than a column per number: which numbers a finding has depends on its rule type
(a withdrawal has a limit, a count cap a count and a cap, fire across the line an origin), so a
column per number would be mostly empty and each new rule type's numbers would need a migration;
NULL tells a finding recorded before this revision (its explanation only) from one with numbers;
and nothing selects or sorts findings by these numbers in SQL. It holds the numbers' canonical
JSON text (sorted keys, no spaces), the very text its ledger entry hashed, written once by ingest:
TEXT rather than PostgreSQL's ``json``/``jsonb``, which would take a second serialisation on the
way in (jsonb would also rewrite the text).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("findings") as b:
        b.add_column(sa.Column("numbers", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("findings") as b:
        b.drop_column("numbers")
