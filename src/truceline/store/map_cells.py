"""The map's summary table (``map_cells``): what the dashboard's overview and timeline read at a
year's scale, rebuilt per day from the stored findings and incidents.

The grid: square cells of ``CELL_PX`` screen pixels at ``BASE_ZOOM`` on 256-pixel Web Mercator
tiles, ``cell_deg(z) = 360 / 2**z * CELL_PX / 256`` degrees on a side, numbered from 180 W and
90 S. A cell at zoom ``z <= BASE_ZOOM`` is exactly ``2**(BASE_ZOOM - z)`` base cells on a side
(``gx >> (BASE_ZOOM - z)``), so one table answers every overview zoom.

Freshness: triggers on ``incidents`` and ``findings`` (migration 0016; per row on SQLite, per
statement with transition tables on PostgreSQL) mark each day a write touches in
``map_stale_days``; :func:`refresh` rebuilds those days' rows and stamps a new version, which keys
the caches of map answers. Whoever deletes a day's mark rebuilds it (``DELETE ... RETURNING``: on
PostgreSQL a second refresh waits on the first's row locks and finds nothing left to do).
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Integer,
    and_,
    case,
    cast,
    delete,
    exists,
    func,
    insert,
    literal,
    or_,
    select,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from truceline.store.models import (
    FindingRow,
    IncidentRow,
    MapCellRow,
    MapCellsVersionRow,
    MapStaleDayRow,
)

__all__ = [
    "BASE_ZOOM",
    "CELL_PX",
    "DIMS",
    "LEAN",
    "LEVELS",
    "cell_deg",
    "grid_cell",
    "is_stale",
    "level",
    "month_end",
    "month_start",
    "refresh",
    "version",
]

#: A cluster's grid cell, in screen pixels at the zoom asked for.
CELL_PX = 64
#: The finest zoom the summary holds cells of (the map shows single points from zoom 11 on).
BASE_ZOOM = 10
#: The zooms the summary holds cells of, each per day and per month (zoom 0: one cell for a
#: whole region, which the timeline reads).
LEVELS = (0, 6, 8, BASE_ZOOM)


def cell_deg(zoom: int) -> float:
    """The side of a grid cell at ``zoom``, in degrees."""
    return 360.0 / float(2**zoom) * CELL_PX / 256.0


def grid_cell(col: Any, offset: float, size: float, dialect: str) -> ColumnElement[int]:
    """The grid column (or row) of a coordinate, computed by the database."""
    x = (col + offset) / size
    if dialect == "postgresql":
        return cast(func.floor(x), BigInteger)
    return cast(x, BigInteger)  # SQLite truncates towards zero: x >= 0 here, so it is floor


def is_stale(session: Session, agreement_id: str) -> bool:
    """Whether a day of the agreement waits to be rebuilt."""
    q = select(MapStaleDayRow.day).where(MapStaleDayRow.agreement_id == agreement_id).limit(1)
    return session.execute(q).first() is not None


def version(session: Session, agreement_id: str) -> int | None:
    """The summary's version (its last rebuild); ``None``: never built (nothing stored yet)."""
    q = select(MapCellsVersionRow.version).where(MapCellsVersionRow.agreement_id == agreement_id)
    return session.execute(q).scalar()


#: The sector and source type of the lean rows (all of them summed).
LEAN = "*"
#: The summary's dimensions besides the day and the cell: every field the map filters on.
DIMS = (
    "finding", "kind", "sector", "source_type", "rule_id", "party", "status", "released",
    "in_force", "in_area",
)  # fmt: skip
_COLS = ["agreement_id", "zoom", "period", "day", "gx", "gy", *DIMS, "n", "sx", "sy"]


def month_start(day: dt.date) -> dt.date:
    return day.replace(day=1)


def month_end(day: dt.date) -> dt.date:
    nxt = (day.replace(day=28) + dt.timedelta(days=4)).replace(day=1)
    return nxt - dt.timedelta(days=1)


def level(zoom: int) -> int:
    """The summary's zoom that answers ``zoom`` (the coarsest of ``LEVELS`` at least as fine)."""
    return min(z for z in LEVELS if z >= zoom)


def refresh(session: Session, agreement_id: str) -> list[dt.date]:
    """Rebuild the agreement's stale days (in the caller's write transaction); returns them.

    The days' rows at ``BASE_ZOOM`` are counted from the stored rows; the coarser levels' from
    those; each month touched is then summed again from its days' rows (per level).
    """
    conn = session.connection()
    gone = (
        delete(MapStaleDayRow)
        .where(MapStaleDayRow.agreement_id == agreement_id)
        .returning(MapStaleDayRow.day)
    )
    got = conn.execute(gone).scalars().all()
    days = sorted({d if isinstance(d, dt.date) else dt.date.fromisoformat(d) for d in got})
    if not days:
        return []
    c = MapCellRow
    months = sorted({month_start(d) for d in days})
    conn.execute(
        delete(c).where(
            c.agreement_id == agreement_id,
            or_(
                and_(c.period == "d", c.day.in_(days)),
                and_(c.period == "m", c.day.in_(months)),
            ),
        )
    )
    dialect = conn.dialect.name
    size = cell_deg(BASE_ZOOM)
    gx = grid_cell(IncidentRow.lon, 180.0, size, dialect)
    gy = grid_cell(IncidentRow.lat, 90.0, size, dialect)
    where = (
        IncidentRow.agreement_id == agreement_id,
        IncidentRow.day.in_(days),
        IncidentRow.withdrawn_at.is_(None),
    )
    released = case((FindingRow.released_at.is_(None), 0), else_=1)
    fkeys = (
        IncidentRow.day,
        gx,
        gy,
        IncidentRow.kind,
        IncidentRow.sector,
        IncidentRow.source_type,
        FindingRow.rule_id,
        FindingRow.responsible,
        FindingRow.status,
        released,
        IncidentRow.in_force,
        IncidentRow.in_area,
    )
    sums = (func.count(), func.sum(IncidentRow.lon), func.sum(IncidentRow.lat))
    head = (literal(agreement_id), literal(BASE_ZOOM), literal("d"))
    fsel = (
        select(*head, *fkeys[:3], literal(1), *fkeys[3:], *sums)
        .select_from(FindingRow)
        .join(IncidentRow, FindingRow.incident_pk == IncidentRow.pk)
        .where(*where)
        .group_by(*fkeys)
    )
    ikeys = (
        IncidentRow.day,
        gx,
        gy,
        IncidentRow.kind,
        IncidentRow.sector,
        IncidentRow.source_type,
        func.coalesce(IncidentRow.party, ""),
        IncidentRow.status,
        IncidentRow.in_force,
        IncidentRow.in_area,
    )
    isel = (
        select(
            *head,
            *ikeys[:3],
            literal(0),
            *ikeys[3:6],
            literal(""),
            *ikeys[6:8],
            literal(0),
            *ikeys[8:],
            *sums,
        )
        .where(*where, ~exists().where(FindingRow.incident_pk == IncidentRow.pk))
        .group_by(*ikeys)
    )
    table = MapCellRow.__table__
    conn.execute(insert(table).from_select(_COLS, fsel))
    conn.execute(insert(table).from_select(_COLS, isel))
    # The coarser levels of the same days, from the finest.
    for z in LEVELS:
        if z != BASE_ZOOM:
            _roll(conn, agreement_id, (BASE_ZOOM, "d"), (z, "d"), c.day.in_(days), c.day)
    # The months touched, per level, from their days.
    for m in months:
        for z in LEVELS:
            _roll(conn, agreement_id, (z, "d"), (z, "m"), c.day.between(m, month_end(m)), literal(m))
    # The lean rows (every sector and source type summed: ``*``), which a filter on neither reads.
    for z in LEVELS:
        _roll(conn, agreement_id, (z, "d"), (z, "d"), c.day.in_(days), c.day, lean=True)
        _roll(conn, agreement_id, (z, "m"), (z, "m"), c.day.in_(months), c.day, lean=True)
    if dialect == "postgresql" and len(days) > 31:
        # Many rows at once (a first build): the planner's statistics, before autovacuum's.
        conn.exec_driver_sql("ANALYZE map_cells")
    upsert = pg_insert if dialect == "postgresql" else sqlite_insert
    stamp = upsert(MapCellsVersionRow).values(agreement_id=agreement_id, version=time.time_ns())
    conn.execute(
        stamp.on_conflict_do_update(
            index_elements=["agreement_id"], set_={"version": stamp.excluded.version}
        )
    )
    return days


def _roll(
    conn: Any,
    agreement_id: str,
    src: tuple[int, str],
    dst: tuple[int, str],
    days: ColumnElement[bool],
    day: Any,
    *,
    lean: bool = False,
) -> None:
    """Sum the (not lean) rows of level and period ``src`` into rows of ``dst`` (``day``: the day
    each new row carries: the same, or the month's first); ``lean``: with every sector and
    source type summed into one (``*``)."""
    c = MapCellRow
    shift = src[0] - dst[0]
    gx = c.gx.op(">>", return_type=Integer)(shift) if shift else c.gx
    gy = c.gy.op(">>", return_type=Integer)(shift) if shift else c.gy
    cols: list[Any] = []
    keys: list[Any] = [day, gx, gy] if dst[1] == "d" or src[1] == "m" else [gx, gy]
    for d in DIMS:
        if lean and d in ("sector", "source_type"):
            cols.append(literal(LEAN))
        else:
            cols.append(getattr(c, d))
            keys.append(getattr(c, d))
    q = (
        select(
            literal(agreement_id),
            literal(dst[0]),
            literal(dst[1]),
            day,
            gx,
            gy,
            *cols,
            func.sum(c.n),
            func.sum(c.sx),
            func.sum(c.sy),
        )
        .where(
            c.agreement_id == agreement_id,
            c.zoom == src[0],
            c.period == src[1],
            c.sector != LEAN,
            days,
        )
        .group_by(*keys)
    )
    conn.execute(insert(MapCellRow.__table__).from_select(_COLS, q))
