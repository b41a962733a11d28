"""PostGIS: a point geometry of each incident with a GiST index (PostgreSQL only)

On PostgreSQL ``incidents.geom`` is a stored generated column, ``POINT`` in EPSG:4326 made from
``lon``/``lat``, so writers never set it and it can never disagree with them; bounding-box queries
use it through the GiST index. SQLite keeps the same schema otherwise and answers the same boxes
from the ``(lon, lat)`` B-tree index of revision 0001.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from geoalchemy2 import Geometry

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("CREATE EXTENSION IF NOT EXISTS postgis")
    op.add_column(
        "incidents",
        sa.Column(
            "geom",
            Geometry("POINT", srid=4326, spatial_index=False),
            sa.Computed("ST_SetSRID(ST_MakePoint(lon, lat), 4326)", persisted=True),
            nullable=True,
        ),
    )
    op.create_index("ix_incident_geom", "incidents", ["geom"], postgresql_using="gist")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.drop_index("ix_incident_geom", table_name="incidents")
    op.drop_column("incidents", "geom")
