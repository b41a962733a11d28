"""incidents carry their second fix: ``ambiguous``, ``alt_lon``, ``alt_lat``, ``alt_weight``

Revision ID: 0017
Revises: 0013

An acoustic event whose likelihood has two modes (the mirror image across a near-linear array of
sensors) is stored at its most probable fix; the other was stated only in the narrative. These
columns hold it for the map, the API and the daily report. They are always what the narrative
states (``truceline.core.incidents.second_fix``): the narrative is in the record's content hash,
so the ledger covers them and ``ledger verify`` compares them with it. Filled here from the stored
narratives.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from truceline.core.incidents import second_fix

revision = "0017"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "incidents", sa.Column("ambiguous", sa.Boolean(), nullable=False, server_default=sa.false())
    )
    op.add_column("incidents", sa.Column("alt_lon", sa.Float(), nullable=True))
    op.add_column("incidents", sa.Column("alt_lat", sa.Float(), nullable=True))
    op.add_column("incidents", sa.Column("alt_weight", sa.Float(), nullable=True))
    conn = op.get_bind()
    rows = conn.execute(
        sa.text("SELECT pk, narrative FROM incidents WHERE narrative LIKE '%AMBIGUOUS%'")
    ).all()
    upd = sa.text(
        "UPDATE incidents SET ambiguous = :a, alt_lon = :x, alt_lat = :y, alt_weight = :w WHERE pk = :pk"
    )
    for pk, narrative in rows:  # the ambiguous acoustic reports (few), once
        fix = second_fix(narrative or "")
        if fix is not None:
            conn.execute(upd, {"a": True, "x": fix[0], "y": fix[1], "w": fix[2], "pk": pk})


def downgrade() -> None:
    with op.batch_alter_table("incidents", recreate="never") as b:
        for c in ("alt_weight", "alt_lat", "alt_lon", "ambiguous"):
            b.drop_column(c)
