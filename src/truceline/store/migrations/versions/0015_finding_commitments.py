"""findings carry ``ledger_salt``: their ledger entries commit to the incident key and report hash

Revision ID: 0015
Revises: 0017 (written on 0013; chained after 0017, merged to main meanwhile)

A finding's ledger entry is what a party's liaison gets as its proof. It used to hold the
incident's internal key and the report's content hash; it now holds a salted commitment to each
(:func:`truceline.ledger_verify.commitment`), so the proof shows only what is released to the
parties and still verifies, while ``ledger verify`` recomputes the commitments from the stored
finding, its incident and this salt. Findings recorded before keep no salt (their entries hold
the values, and verify as before).

The salt exists nowhere else (the entries hold only the commitments), so a downgrade keeps the
salts in ``finding_ledger_salts``, a table the older schema ignores, and the upgrade puts them
back: without them the findings' entries could not be verified again.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0017"
branch_labels = None
depends_on = None


KEPT = "finding_ledger_salts"


def upgrade() -> None:
    op.add_column("findings", sa.Column("ledger_salt", sa.String(32), nullable=True))
    if KEPT in sa.inspect(op.get_bind()).get_table_names():  # salts kept by a downgrade
        op.execute(
            f"UPDATE findings SET ledger_salt = (SELECT k.salt FROM {KEPT} k "
            f"WHERE k.finding_pk = findings.pk) WHERE pk IN (SELECT finding_pk FROM {KEPT})"
        )
        op.drop_table(KEPT)


def downgrade() -> None:
    op.create_table(
        KEPT,
        sa.Column("finding_pk", sa.Integer, primary_key=True),
        sa.Column("salt", sa.String(32), nullable=False),
    )
    op.execute(
        f"INSERT INTO {KEPT} (finding_pk, salt) "
        "SELECT pk, ledger_salt FROM findings WHERE ledger_salt IS NOT NULL"
    )
    with op.batch_alter_table("findings", recreate="never") as b:
        b.drop_column("ledger_salt")
