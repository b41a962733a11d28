"""sensors, detections, fused events; each incident's event

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sensors",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("agreement_id", sa.String(64), sa.ForeignKey("agreements.id"), nullable=False),
        sa.Column("network", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("lon", sa.Float(), nullable=False),
        sa.Column("lat", sa.Float(), nullable=False),
        sa.Column("elevation_m", sa.Float(), nullable=False),
        sa.Column("timing_sigma_ms", sa.Float(), nullable=False),
        sa.Column("sector", sa.String(64), nullable=False),
        sa.Column("registered_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("registered_by", sa.String(128), nullable=False),
        sa.Column("retired_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_sensor_agreement", "sensors", ["agreement_id", "sector"])
    op.create_table(
        "events",
        sa.Column("pk", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("agreement_id", sa.String(64), sa.ForeignKey("agreements.id"), nullable=False),
        sa.Column("observed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("lon", sa.Float(), nullable=False),
        sa.Column("lat", sa.Float(), nullable=False),
        sa.Column("cov_xx_m2", sa.Float(), nullable=False),
        sa.Column("cov_xy_m2", sa.Float(), nullable=False),
        sa.Column("cov_yy_m2", sa.Float(), nullable=False),
        sa.Column("n_reports", sa.Integer(), nullable=False),
        sa.Column("n_sources", sa.Integer(), nullable=False),
        sa.Column("confidence", sa.Float(), nullable=False),
        sa.Column("origin", sa.String(16), nullable=False),
        sa.Column("merged_into", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("pk"),
    )
    op.create_index("ix_event_day", "events", ["agreement_id", "day"])
    op.create_table(
        "detections",
        sa.Column("pk", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("agreement_id", sa.String(64), sa.ForeignKey("agreements.id"), nullable=False),
        sa.Column("sensor_id", sa.String(64), sa.ForeignKey("sensors.id"), nullable=False),
        sa.Column("detection_id", sa.String(128), nullable=False),
        sa.Column("arrival_us", sa.BigInteger(), nullable=False),
        sa.Column("signal", sa.String(16), nullable=False),
        sa.Column("amplitude_db", sa.Float(), nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("submitted_by", sa.String(128), nullable=False),
        sa.Column("incident_pk", sa.Integer(), sa.ForeignKey("incidents.pk"), nullable=True),
        sa.PrimaryKeyConstraint("pk"),
        sa.UniqueConstraint("sensor_id", "detection_id", name="uq_detection"),
    )
    op.create_index("ix_detection_time", "detections", ["agreement_id", "arrival_us"])
    op.create_index("ix_detection_incident", "detections", ["incident_pk"])
    # SQLite cannot add a foreign key to an existing table in place: batch mode copies the table.
    with op.batch_alter_table("incidents") as b:
        b.add_column(sa.Column("event_id", sa.Integer(), nullable=True))
        b.create_foreign_key("fk_incident_event", "events", ["event_id"], ["pk"])
        b.create_index("ix_incident_event", ["event_id"])
        # fusion's candidate window (time first: a few minutes of a busy day)
        b.create_index("ix_incident_time", ["agreement_id", "observed_at"])


def downgrade() -> None:
    with op.batch_alter_table("incidents") as b:
        b.drop_index("ix_incident_time")
        b.drop_index("ix_incident_event")
        b.drop_constraint("fk_incident_event", type_="foreignkey")
        b.drop_column("event_id")
    op.drop_index("ix_detection_incident", table_name="detections")
    op.drop_index("ix_detection_time", table_name="detections")
    op.drop_table("detections")
    op.drop_index("ix_event_day", table_name="events")
    op.drop_table("events")
    op.drop_index("ix_sensor_agreement", table_name="sensors")
    op.drop_table("sensors")
