"""attachments: evidence files filed on incidents (their bytes in the content-addressed store)

Revision ID: 0010
Revises: 0009

One row per file and incident; the bytes live in the attachment store (a directory by default)
under their SHA-256, so identical bytes are stored once. Every row is a ledger entry
(kind ``attachment``).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "attachments",
        sa.Column("pk", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column(
            "incident_pk",
            sa.Integer(),
            sa.ForeignKey("incidents.pk", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("media_type", sa.String(64), nullable=False),
        sa.Column("filename", sa.String(255), nullable=False),
        sa.Column("filed_by", sa.String(128), nullable=False),
        sa.Column("filed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("integrity", sa.String(128), nullable=False),
        sa.Column("exif_time", sa.DateTime(timezone=True), nullable=True),
        sa.Column("exif_lon", sa.Float(), nullable=True),
        sa.Column("exif_lat", sa.Float(), nullable=True),
        sa.Column("consistent", sa.Boolean(), nullable=True),
        sa.Column("consistency", sa.Text(), nullable=False),
        sa.Column("c2pa", sa.Text(), nullable=False),
        sa.Column("released", sa.Boolean(), nullable=False),
        sa.Column("keep_location", sa.Boolean(), nullable=False),
        sa.Column("released_sha256", sa.String(64), nullable=True),
        sa.Column("released_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("released_by", sa.String(128), nullable=True),
        sa.UniqueConstraint("incident_pk", "sha256", name="uq_attachment"),
    )
    op.create_index("ix_attachment_sha", "attachments", ["sha256"])


def downgrade() -> None:
    op.drop_index("ix_attachment_sha", table_name="attachments")
    op.drop_table("attachments")
