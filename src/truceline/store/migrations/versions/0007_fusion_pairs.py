"""fusion's pairs: the links it made and the possible duplicates, with their probability

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "fusion_pairs",
        sa.Column("pk", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("agreement_id", sa.String(64), sa.ForeignKey("agreements.id"), nullable=False),
        sa.Column("a_pk", sa.Integer(), sa.ForeignKey("incidents.pk"), nullable=False),
        sa.Column("b_pk", sa.Integer(), sa.ForeignKey("incidents.pk"), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("probability", sa.Float(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("observed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("batch_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_fusion_pair_a", "fusion_pairs", ["a_pk"])
    op.create_index("ix_fusion_pair_b", "fusion_pairs", ["b_pk"])
    op.create_index("ix_fusion_pair_status", "fusion_pairs", ["agreement_id", "status", "observed_at"])


def downgrade() -> None:
    op.drop_index("ix_fusion_pair_status", table_name="fusion_pairs")
    op.drop_index("ix_fusion_pair_b", table_name="fusion_pairs")
    op.drop_index("ix_fusion_pair_a", table_name="fusion_pairs")
    op.drop_table("fusion_pairs")
