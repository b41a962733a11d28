"""incident revisions: a stored report revised by its source keeps its earlier contents

Revision ID: 0008
Revises: 0007

ACLED revises published rows (same ``event_id_cnty``, later ``timestamp``) and a TAK marker is
moved or edited under the same ``uid``. The incident row holds the newest content (so every query,
filter and report reads one row per report, as before); ``incident_revisions`` keeps each earlier
content with the adjudication and findings it had. ``incidents.revision`` counts them (1: never
revised) and ``incidents.version`` is the source's own ordering of its sendings (seconds), so an
older sending never replaces a newer one.

``patrol_positions`` keeps the monitors' own position reports (TAK PLI): where the patrols were,
one row per device and time.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ALTER TABLE (SQLite too): a batch copy of ``incidents`` would drop the table its
    # findings reference, and SQLite's foreign keys would take the findings with it.
    op.add_column("incidents", sa.Column("revision", sa.Integer(), nullable=False, server_default="1"))
    op.add_column("incidents", sa.Column("version", sa.Float(), nullable=True))
    op.create_table(
        "incident_revisions",
        sa.Column("pk", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column(
            "incident_pk",
            sa.Integer(),
            sa.ForeignKey("incidents.pk", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("version", sa.Float(), nullable=True),
        sa.Column("record", sa.Text(), nullable=True),
        sa.Column("adjudication", sa.Text(), nullable=True),
        sa.Column("findings", sa.Text(), nullable=True),
        sa.Column("batch_id", sa.Integer(), sa.ForeignKey("ingest_batches.id"), nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("submitted_by", sa.String(128), nullable=False, server_default=""),
        sa.Column("superseded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "superseded_by_batch", sa.Integer(), sa.ForeignKey("ingest_batches.id"), nullable=True
        ),
        sa.UniqueConstraint("incident_pk", "revision", name="uq_incident_revision"),
    )

    op.create_table(
        "patrol_positions",
        sa.Column("pk", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("agreement_id", sa.String(64), sa.ForeignKey("agreements.id"), nullable=False),
        sa.Column("uid", sa.String(200), nullable=False),
        sa.Column("callsign", sa.String(100), nullable=False),
        sa.Column("group_name", sa.String(64), nullable=False),
        sa.Column("group_role", sa.String(64), nullable=False),
        sa.Column("cot_type", sa.String(100), nullable=False),
        sa.Column("observed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("lon", sa.Float(), nullable=False),
        sa.Column("lat", sa.Float(), nullable=False),
        sa.Column("uncertainty_m", sa.Float(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("submitted_by", sa.String(128), nullable=False),
        sa.UniqueConstraint("agreement_id", "uid", "observed_at", name="uq_patrol_position"),
    )
    op.create_index("ix_patrol_time", "patrol_positions", ["agreement_id", "observed_at"])


def downgrade() -> None:
    op.drop_index("ix_patrol_time", table_name="patrol_positions")
    op.drop_table("patrol_positions")
    op.drop_table("incident_revisions")
    op.drop_column("incidents", "version")  # ALTER TABLE ... DROP COLUMN (SQLite >= 3.35)
    op.drop_column("incidents", "revision")
