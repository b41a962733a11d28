"""events carry ``count``: how many explosions (shots, ...) the event stands for

Revision ID: 0013
Revises: 0011

An event's count is the largest count among its reports ("12 explosions" from one patrol, 1 from
an acoustic fix of one of them: 12), not the number of its reports. The daily statistics and the
daily report count explosions from it. It is derived from the members' counts, which the ledger
holds (each report's content), and ``ledger verify`` compares it with them. Filled here from the
stored members.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("events", sa.Column("count", sa.Integer(), nullable=False, server_default="1"))
    op.execute(
        "UPDATE events SET count = COALESCE((SELECT MAX(COALESCE(i.count, 1)) FROM incidents i "
        "WHERE i.event_id = events.pk), 1)"
    )


def downgrade() -> None:
    with op.batch_alter_table("events", recreate="never") as b:
        b.drop_column("count")
