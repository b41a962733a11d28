"""findings carry ``ledger_salt``: their ledger entries commit to the incident key and report hash

Revision ID: 0015
Revises: 0017 (written on 0013; chained after 0017, merged to main meanwhile)

A finding's ledger entry is what a party's liaison gets as its proof. It used to hold the
incident's internal key and the report's content hash; it now holds a salted commitment to each
(:func:`truceline.ledger_verify.commitment`), so the proof shows only what is released to the
parties and still verifies, while ``ledger verify`` recomputes the commitments from the stored
finding, its incident and this salt. Findings recorded before keep no salt (their entries hold
the values, and verify as before).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("findings", sa.Column("ledger_salt", sa.String(32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("findings", recreate="never") as b:
        b.drop_column("ledger_salt")
