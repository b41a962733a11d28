"""the map's summary, slimmed: no full rows at zoom 0 (a filter on a sector or a source type
sums zoom 6's) and no lean rows at zoom 10 (a filter on neither sums the full rows there)

Revision ID: 0020
Revises: 0016 (made with 0016 as its parent)

Also an index by day (``ix_map_cells_day``) for the build in steps.

The rows dropped are sums of rows kept, so every answer stays the same and nothing is rebuilt
(see truceline.store.map_cells: ``FULL_LEVELS``, ``LEAN_LEVELS``). The downgrade marks every
stored day stale: the older code rebuilds the rows it reads.
"""

from __future__ import annotations

from alembic import op

revision = "0020"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        "DELETE FROM map_cells WHERE (zoom = 0 AND sector <> '*') OR (zoom = 10 AND sector = '*')"
    )
    # A build's step reads its days' rows of each level: one range of this index (the other
    # one, by sector first, made each step read the whole level: a year's build in steps twice
    # as slow as in one go).
    op.create_index("ix_map_cells_day", "map_cells", ["agreement_id", "zoom", "period", "day"])


def downgrade() -> None:
    op.drop_index("ix_map_cells_day", table_name="map_cells")
    op.execute(
        "INSERT INTO map_stale_days (agreement_id, day) SELECT DISTINCT agreement_id, day "
        "FROM incidents i WHERE NOT EXISTS (SELECT 1 FROM map_stale_days s "
        "WHERE s.agreement_id = i.agreement_id AND s.day = i.day)"
    )
