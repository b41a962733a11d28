"""the map's summary: ``map_cells`` (counts per day and month, grid cell at a few zooms and
filtered field), the days
waiting to be rebuilt (``map_stale_days``, written by triggers on incidents and findings) and the
summary's version per agreement

Revision ID: 0016
Revises: 0015 (re-chained after 0017 and 0015 reached main; made with 0013 as its parent)

``map_cells`` is derived from the ledgered ``incidents`` and ``findings`` and rebuilt from them
(truceline.store.map_cells.refresh), so it is not ledgered itself. Every day already stored is
marked stale here: `truceline db summarise` builds the summary in resumable steps (the map
starts the same build in the background when more than a week of days waits, and counts the
rows meanwhile).

The triggers: SQLite, per row (``INSERT OR IGNORE`` of the row's day); PostgreSQL, per
statement, with transition tables (one ``INSERT ... SELECT DISTINCT`` per statement, so a
``COPY`` of 100,000 reports costs one query, not 100,000 calls).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

# (table, columns whose update moves a row on the map or between filters) -- SQLite only; the
# PostgreSQL triggers fire on any update (a column list and transition tables do not mix).
_WATCHED = {
    "incidents": "agreement_id, day, lon, lat, kind, sector, source_type, party, status, "
    "in_force, in_area, withdrawn_at",
    "findings": "incident_pk, rule_id, responsible, status, released_at",
}
_MARK_INCIDENT = (
    "INSERT OR IGNORE INTO map_stale_days (agreement_id, day) VALUES ({r}.agreement_id, {r}.day);"
)
_MARK_FINDING = (
    "INSERT OR IGNORE INTO map_stale_days (agreement_id, day) "
    "SELECT agreement_id, day FROM incidents WHERE pk = {r}.incident_pk;"
)

_PG_FUNCTIONS = {
    "incidents": "SELECT DISTINCT agreement_id, day FROM {t}",
    "findings": "SELECT DISTINCT i.agreement_id, i.day FROM {t} f "
    "JOIN incidents i ON i.pk = f.incident_pk",
}


def _sqlite_triggers() -> list[str]:
    out = []
    for table, cols in _WATCHED.items():
        mark = _MARK_INCIDENT if table == "incidents" else _MARK_FINDING
        name = f"map_stale_{table}"
        out.append(f"CREATE TRIGGER {name}_ins AFTER INSERT ON {table} BEGIN {mark.format(r='NEW')} END")
        out.append(
            f"CREATE TRIGGER {name}_upd AFTER UPDATE OF {cols} ON {table} BEGIN "
            f"{mark.format(r='OLD')} {mark.format(r='NEW')} END"
        )
        out.append(f"CREATE TRIGGER {name}_del AFTER DELETE ON {table} BEGIN {mark.format(r='OLD')} END")
    return out


def _pg_triggers() -> list[str]:
    out = []
    for table, sel in _PG_FUNCTIONS.items():
        fn = f"map_stale_{table}"
        out.append(
            f"CREATE FUNCTION {fn}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            f"IF TG_OP IN ('INSERT', 'UPDATE') THEN INSERT INTO map_stale_days (agreement_id, day) "
            f"{sel.format(t='new_rows')} ON CONFLICT DO NOTHING; END IF; "
            f"IF TG_OP IN ('DELETE', 'UPDATE') THEN INSERT INTO map_stale_days (agreement_id, day) "
            f"{sel.format(t='old_rows')} ON CONFLICT DO NOTHING; END IF; "
            "RETURN NULL; END $$"
        )
        for event, ref in (
            ("INSERT", "NEW TABLE AS new_rows"),
            ("UPDATE", "OLD TABLE AS old_rows NEW TABLE AS new_rows"),
            ("DELETE", "OLD TABLE AS old_rows"),
        ):
            out.append(
                f"CREATE TRIGGER {fn}_{event.lower()[:3]} AFTER {event} ON {table} "
                f"REFERENCING {ref} FOR EACH STATEMENT EXECUTE FUNCTION {fn}()"
            )
    return out


def upgrade() -> None:
    op.create_table(
        "map_cells",
        sa.Column("pk", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("agreement_id", sa.String(64), nullable=False),
        sa.Column("zoom", sa.Integer(), nullable=False),
        sa.Column("period", sa.String(1), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("gx", sa.Integer(), nullable=False),
        sa.Column("gy", sa.Integer(), nullable=False),
        sa.Column("finding", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("sector", sa.String(64), nullable=False),
        sa.Column("source_type", sa.String(32), nullable=False),
        sa.Column("rule_id", sa.String(64), nullable=False),
        sa.Column("party", sa.String(32), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("released", sa.Integer(), nullable=False),
        sa.Column("in_force", sa.Boolean(), nullable=True),
        sa.Column("in_area", sa.Boolean(), nullable=True),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.Column("sx", sa.Float(), nullable=False),
        sa.Column("sy", sa.Float(), nullable=False),
    )
    op.create_index(
        "ix_map_cells_level", "map_cells", ["agreement_id", "zoom", "period", "sector", "day"]
    )
    op.create_table(
        "map_stale_days",
        sa.Column("agreement_id", sa.String(64), primary_key=True),
        sa.Column("day", sa.Date(), primary_key=True),
    )
    op.create_table(
        "map_cells_version",
        sa.Column("agreement_id", sa.String(64), primary_key=True),
        sa.Column("version", sa.BigInteger(), nullable=False),
    )
    pg = op.get_bind().dialect.name == "postgresql"
    for ddl in _pg_triggers() if pg else _sqlite_triggers():
        op.execute(ddl)
    op.execute(
        "INSERT INTO map_stale_days (agreement_id, day) SELECT DISTINCT agreement_id, day FROM incidents"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in _PG_FUNCTIONS:
            for ev in ("ins", "upd", "del"):
                op.execute(f"DROP TRIGGER IF EXISTS map_stale_{table}_{ev} ON {table}")
            op.execute(f"DROP FUNCTION IF EXISTS map_stale_{table}()")
    else:
        for table in _WATCHED:
            for ev in ("ins", "upd", "del"):
                op.execute(f"DROP TRIGGER IF EXISTS map_stale_{table}_{ev}")
    op.drop_table("map_cells_version")
    op.drop_table("map_stale_days")
    op.drop_index("ix_map_cells_level", table_name="map_cells")
    op.drop_table("map_cells")
