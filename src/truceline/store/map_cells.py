"""The map's summary table (``map_cells``): what the dashboard's overview and timeline read at a
year's scale, rebuilt per day from the stored findings and incidents.

The grid: square cells of ``CELL_PX`` screen pixels at ``BASE_ZOOM`` on 256-pixel Web Mercator
tiles, ``cell_deg(z) = 360 / 2**z * CELL_PX / 256`` degrees on a side, numbered from 180 W and
90 S. A cell at zoom ``z <= BASE_ZOOM`` is exactly ``2**(BASE_ZOOM - z)`` base cells on a side
(``gx >> (BASE_ZOOM - z)``), so one table answers every overview zoom.

Periods: rows per day (``period`` "d"), per month ("m", ``day`` its first day) and per year ("y",
``day`` the 1st of January). A year's rows are summed from its months' after its last stale day is
built, by :func:`sum_years` (a step of its own: a day rebuilt deletes its year's rows, and the map
reads that year's months until the year is summed again), so that a year's overview at the finest
levels reads one row per cell and value instead of twelve.

Freshness: triggers on ``incidents`` and ``findings`` (migration 0016; per row on SQLite, per
statement with transition tables on PostgreSQL) mark each day a write touches in
``map_stale_days``; :func:`refresh` rebuilds those days' rows and stamps a new version, which keys
the caches of map answers. Whoever deletes a day's mark rebuilds it (``DELETE ... RETURNING``: on
PostgreSQL a second refresh waits on the first's row locks and finds nothing left to do).
"""

from __future__ import annotations

import datetime as dt
import math
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
    union,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session
from sqlalchemy.sql import Select

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
    "FULL_LEVELS",
    "LEAN",
    "LEAN_LEVELS",
    "LEVELS",
    "analyse",
    "as_date",
    "cell_deg",
    "check",
    "grid_cell",
    "is_stale",
    "level",
    "mark_all",
    "month_end",
    "month_start",
    "refresh",
    "stale_by_agreement",
    "stale_days",
    "sum_years",
    "summed_years",
    "unsummed_years",
    "version",
    "version_by_agreement",
    "year_end",
    "year_start",
]

#: A cluster's grid cell, in screen pixels at the zoom asked for.
CELL_PX = 64
#: The finest zoom the summary holds cells of (the map shows single points from zoom 11 on).
BASE_ZOOM = 10
#: The zooms the summary holds cells of, each per day and per month (zoom 0: one cell for a
#: whole region, which the timeline reads).
LEVELS = (0, 6, 8, BASE_ZOOM)
#: The levels holding rows with every sector and source type apart ("full" rows). Not zoom 0:
#: its full rows were 73 % as many as zoom 6's (one cell, but every field apart), so a filter on
#: a sector or a source type at zoom 0 (the timeline) sums zoom 6's.
FULL_LEVELS = (6, 8, BASE_ZOOM)
#: The levels holding lean rows (sectors and source types summed: ``*``), which a filter on
#: neither reads. Not ``BASE_ZOOM``: a cell of about 10 km rarely spans two sectors, so its lean rows
#: were 87 % as many as its full rows; a filter on neither at zooms 9-10 sums the full rows.
LEAN_LEVELS = (0, 6, 8)


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


def stale_days(session: Session, agreement_id: str) -> int:
    """How many days of the agreement wait to be rebuilt."""
    q = select(func.count()).select_from(MapStaleDayRow)
    return int(session.execute(q.where(MapStaleDayRow.agreement_id == agreement_id)).scalar_one())


def stale_by_agreement(session: Session) -> dict[str, int]:
    """The agreements with days waiting to be rebuilt, and how many each."""
    sd = MapStaleDayRow
    q = select(sd.agreement_id, func.count()).group_by(sd.agreement_id).order_by(sd.agreement_id)
    return {a: int(n) for a, n in session.execute(q)}


def mark_all(session: Session) -> int:
    """Mark every day that has stored incidents or summary rows as waiting to be rebuilt (the
    next :func:`refresh` steps rebuild the whole summary); returns how many days are marked."""
    conn = session.connection()
    c, sd, inc = MapCellRow, MapStaleDayRow, IncidentRow
    days = union(select(inc.agreement_id, inc.day).distinct(), select(c.agreement_id, c.day).distinct())
    # All marks again in one statement (the union is distinct; SQLite's INSERT ... SELECT cannot
    # take ON CONFLICT without a WHERE)
    conn.execute(delete(sd))
    conn.execute(insert(sd).from_select(["agreement_id", "day"], select(days.subquery())))
    return int(conn.execute(select(func.count()).select_from(sd)).scalar_one())


def analyse(session: Session) -> None:
    """Refresh the planner's statistics of the summary after many rows changed (PostgreSQL; on
    SQLite the queries do not need them)."""
    if session.get_bind().dialect.name == "postgresql":
        session.connection().exec_driver_sql("ANALYZE map_cells")


def version_by_agreement(session: Session) -> dict[str, int]:
    """Every agreement's summary version (those built at least once)."""
    q = select(MapCellsVersionRow.agreement_id, MapCellsVersionRow.version)
    return {a: int(v) for a, v in session.execute(q)}


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


def year_start(day: dt.date) -> dt.date:
    return day.replace(month=1, day=1)


def year_end(day: dt.date) -> dt.date:
    return day.replace(month=12, day=31)


def level(zoom: int, *, lean: bool = False) -> tuple[int, bool]:
    """The summary's level that answers ``zoom`` (the coarsest at least as fine), and whether
    its lean rows answer it (``lean``: the filter is on neither sectors nor source types, so
    lean rows may, where the level holds them)."""
    if lean and any(z >= zoom for z in LEAN_LEVELS):
        return min(z for z in LEAN_LEVELS if z >= zoom), True
    return min(z for z in FULL_LEVELS if z >= zoom), False


def refresh(session: Session, agreement_id: str, *, limit: int | None = None) -> list[dt.date]:
    """Rebuild the agreement's stale days (in the caller's write transaction); returns them.

    The days' rows at ``BASE_ZOOM`` are counted from the stored rows; the coarser levels' from
    those; each month touched is then summed again from its days' rows (per level).

    ``limit``: rebuild at most that many days, the oldest first (a build in steps, each its own
    transaction: resumable, and no long write lock). A month with days still stale after the
    step is summed by the step that rebuilds its last one (its month rows are absent meanwhile,
    and nothing reads the summary while any day is stale).
    """
    conn = session.connection()
    if conn.dialect.name == "postgresql":
        # One rebuild of an agreement at a time (SQLite's writers are one at a time anyway): two
        # steps, each seeing the other's days still marked, would both leave a month unsummed.
        conn.execute(select(func.pg_advisory_xact_lock(func.hashtext("map_cells:" + agreement_id))))
    sd = MapStaleDayRow
    which = sd.agreement_id == agreement_id
    if limit is not None:
        oldest = select(sd.day).where(which).order_by(sd.day).limit(limit)
        which = and_(which, sd.day.in_(oldest.scalar_subquery()))
    got = conn.execute(delete(sd).where(which).returning(sd.day)).scalars().all()
    days = sorted({_date(d) for d in got})
    if not days:
        return []
    c = MapCellRow
    months = sorted({month_start(d) for d in days})
    years = sorted({year_start(d) for d in days})
    waiting = select(sd.day).where(
        sd.agreement_id == agreement_id, sd.day.between(months[0], month_end(months[-1]))
    )
    pending = {month_start(_date(d)) for d in conn.execute(waiting).scalars()}
    summed = [m for m in months if m not in pending]
    conn.execute(
        delete(c).where(
            c.agreement_id == agreement_id,
            or_(
                and_(c.period == "d", c.day.in_(days)),
                and_(c.period == "m", c.day.in_(months)),
                # the years' rows too: the map reads their months until sum_years sums them again
                and_(c.period == "y", c.day.in_(years)),
            ),
        )
    )
    dialect = conn.dialect.name
    fsel, isel = _counted(agreement_id, IncidentRow.day.in_(days), dialect)
    table = MapCellRow.__table__
    conn.execute(insert(table).from_select(_COLS, fsel))
    conn.execute(insert(table).from_select(_COLS, isel))
    # The coarser levels of the same days, from the finest.
    for z in FULL_LEVELS:
        if z != BASE_ZOOM:
            _roll(conn, agreement_id, (BASE_ZOOM, "d"), (z, "d"), c.day.in_(days), c.day)
    # The months summed (no day of theirs left stale), per level, from their days.
    for m in summed:
        for z in FULL_LEVELS:
            _roll(conn, agreement_id, (z, "d"), (z, "m"), c.day.between(m, month_end(m)), literal(m))
    # The lean rows (every sector and source type summed: ``*``), from the full rows of the
    # coarsest level at least as fine.
    for z in LEAN_LEVELS:
        src = min(f for f in FULL_LEVELS if f >= z)
        _roll(conn, agreement_id, (src, "d"), (z, "d"), c.day.in_(days), c.day, lean=True)
        if summed:
            _roll(conn, agreement_id, (src, "m"), (z, "m"), c.day.in_(summed), c.day, lean=True)
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


def summed_years(session: Session, agreement_id: str, zoom: int) -> set[dt.date]:
    """The years (their 1st of January) whose rows the summary holds at level ``zoom``."""
    c = MapCellRow
    q = select(c.day).where(c.agreement_id == agreement_id, c.zoom == zoom, c.period == "y")
    return {as_date(d) for d in session.execute(q.distinct()).scalars()}


def unsummed_years(session: Session, agreement_id: str) -> list[dt.date]:
    """The years with summed months but no rows of their own, none of whose days waits to be
    rebuilt: what :func:`sum_years` sums."""
    c, sd = MapCellRow, MapStaleDayRow
    z = FULL_LEVELS[0]  # every level's months and years are written together: the coarsest tells
    q = select(c.day).where(c.agreement_id == agreement_id, c.zoom == z, c.period == "m").distinct()
    months = {as_date(d) for d in session.execute(q).scalars()}
    stale = session.execute(select(sd.day).where(sd.agreement_id == agreement_id)).scalars()
    waiting = {year_start(as_date(d)) for d in stale}
    return sorted({year_start(m) for m in months} - summed_years(session, agreement_id, z) - waiting)


def sum_years(session: Session, agreement_id: str) -> list[dt.date]:
    """Sum the agreement's :func:`unsummed_years` from their months' rows, per level (in the
    caller's write transaction); returns them. A step of its own, after :func:`refresh`: a
    year's sum reads twelve months of rows per level (seconds at a year's scale), which an
    ingest's rebuild of a day should not wait for."""
    conn = session.connection()
    if conn.dialect.name == "postgresql":  # one rebuild of an agreement at a time (see refresh)
        conn.execute(select(func.pg_advisory_xact_lock(func.hashtext("map_cells:" + agreement_id))))
    years = unsummed_years(session, agreement_id)
    c = MapCellRow
    for y in years:
        for z in FULL_LEVELS:
            _roll(conn, agreement_id, (z, "m"), (z, "y"), c.day.between(y, year_end(y)), literal(y))
        for z in LEAN_LEVELS:
            src = min(f for f in FULL_LEVELS if f >= z)
            _roll(conn, agreement_id, (src, "y"), (z, "y"), c.day == y, c.day, lean=True)
    return years


def _counted(
    agreement_id: str, days: ColumnElement[bool], dialect: str
) -> tuple[Select[Any], Select[Any]]:
    """The rows at ``BASE_ZOOM`` per day of ``days`` (a condition on ``IncidentRow.day``), counted
    from the stored findings and from the incidents without findings."""
    size = cell_deg(BASE_ZOOM)
    gx = grid_cell(IncidentRow.lon, 180.0, size, dialect)
    gy = grid_cell(IncidentRow.lat, 90.0, size, dialect)
    where = (
        IncidentRow.agreement_id == agreement_id,
        days,
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
    return fsel, isel


def as_date(d: Any) -> dt.date:
    """A day as read from the database (SQLite gives text)."""
    return d if isinstance(d, dt.date) else dt.date.fromisoformat(d)


_date = as_date


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
    """Sum the (not lean) rows of level and period ``src`` into rows of ``dst``
    (:func:`_rolled`)."""
    q = _rolled(agreement_id, src, dst, days, day, lean=lean)
    conn.execute(insert(MapCellRow.__table__).from_select(_COLS, q))


def _rolled(
    agreement_id: str,
    src: tuple[int, str],
    dst: tuple[int, str],
    days: ColumnElement[bool],
    day: Any,
    *,
    lean: bool = False,
) -> Select[Any]:
    """The rows of level and period ``dst`` summed from the (not lean) rows of ``src`` (``day``: the day
    each new row carries: the same, or the month's first); ``lean``: with every sector and
    source type summed into one (``*``)."""
    c = MapCellRow
    shift = src[0] - dst[0]
    gx = c.gx.op(">>", return_type=Integer)(shift) if shift else c.gx
    gy = c.gy.op(">>", return_type=Integer)(shift) if shift else c.gy
    cols: list[Any] = []
    # the day is a key where each source row keeps its own (a day, or a period's lean rows from
    # its full ones); else it is the one day of the period summed into
    keys: list[Any] = [day, gx, gy] if dst[1] == "d" or src[1] == dst[1] else [gx, gy]
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
    return q


def check(session: Session, *, limit: int = 20) -> list[str]:
    """What in the summary differs from what it is built from (at most ``limit`` messages, one
    per day, month or year and agreement): each day's rows at ``BASE_ZOOM`` counted again from
    the stored findings and incidents, and each coarser, monthly, yearly or lean level summed
    again from the stored level it is summed from, so that any single edit, insertion or
    deletion of a summary row shows. Days waiting to be rebuilt (and the months and years they
    are in) are left out: the map does not read them. Read only, a month (or a year) and a level
    at a time (memory bounded by the rows of one level and period summed)."""
    conn = session.connection()
    dialect = conn.dialect.name
    c, sd, inc = MapCellRow, MapStaleDayRow, IncidentRow
    built = set(conn.execute(select(MapCellsVersionRow.agreement_id)).scalars())
    built |= set(conn.execute(select(c.agreement_id).distinct()).scalars())
    out: list[str] = []
    for aid in sorted(built):
        stale = {_date(d) for d in conn.execute(select(sd.day).where(sd.agreement_id == aid)).scalars()}
        held = select(c.day).where(c.agreement_id == aid).distinct()
        lived = select(inc.day).where(inc.agreement_id == aid, inc.withdrawn_at.is_(None)).distinct()
        days = {_date(d) for q in (held, lived) for d in conn.execute(q).scalars()}
        for m in sorted({month_start(d) for d in days}):
            end = month_end(m)
            whole = m not in {month_start(d) for d in stale}
            month = c.day.between(m, end)
            # the month's rows, and rows at no level the map reads (another zoom, period or kind
            # of row; a year's rows are checked below)
            held_rows = and_(c.period.notin_(("m", "y")), month)
            if whole:
                held_rows = or_(held_rows, and_(c.period == "m", c.day == m))
            found = _found(conn, aid, _levels(aid, m, whole, dialect), held_rows, stale, limit)
            if _report(out, aid, found, limit):
                return out
        # The years summed (those not summed yet, or with days waiting, the map does not read).
        waiting = {year_start(d) for d in stale}
        for y in sorted({year_start(d) for d in days} - waiting):
            year = and_(c.period == "y", c.day.between(y, year_end(y)))
            if conn.execute(select(c.pk).where(c.agreement_id == aid, year).limit(1)).first() is None:
                continue
            found = _found(conn, aid, _year_levels(aid, y), year, stale, limit)
            if _report(out, aid, found, limit):
                return out
    return out


def _found(
    conn: Any,
    agreement_id: str,
    levels: list[tuple[list[Select[Any]], ColumnElement[bool]]],
    held: ColumnElement[bool],
    stale: set[dt.date],
    limit: int,
) -> set[str]:
    """Where the stored rows of each of ``levels`` differ from what they should be, and which
    ``held`` rows are at none of them."""
    c = MapCellRow
    found: set[str] = set()
    for expected, which in levels:
        stored = select(*(getattr(c, k) for k in _COLS)).where(c.agreement_id == agreement_id, which)
        want, _ = _keyed(conn, expected, stale)
        have, twice = _keyed(conn, [stored], stale)
        found |= _differences(want, have) | twice
    astray = select(c.zoom, c.period, c.day).where(
        c.agreement_id == agreement_id, held, ~or_(*(w for _, w in levels))
    )
    found |= {_where(tuple(["", *r[:2], _plain(r[2])])) for r in conn.execute(astray.limit(limit))}
    return found


def _report(out: list[str], agreement_id: str, found: set[str], limit: int) -> bool:
    """Add a message per place ``found`` to ``out``; whether ``limit`` messages are reached."""
    for what in sorted(found):
        out.append(
            f"map summary of agreement {agreement_id!r}, {what}, differs from the stored records "
            "it sums: rebuild it (`truceline db summarise --rebuild`)"
        )
        if len(out) >= limit:
            return True
    return False


def _year_levels(agreement_id: str, y: dt.date) -> list[tuple[list[Select[Any]], ColumnElement[bool]]]:
    """For each level of year ``y``'s rows: the query of what they should be (summed from the
    months' stored rows, the lean ones from the year's full rows) and which stored rows they are."""
    c = MapCellRow
    out: list[tuple[list[Select[Any]], ColumnElement[bool]]] = []
    at = and_(c.period == "y", c.day == y)
    for z in FULL_LEVELS:
        months = c.day.between(y, year_end(y))
        expected = _rolled(agreement_id, (z, "m"), (z, "y"), months, literal(y))
        out.append(([expected], and_(c.zoom == z, at, c.sector != LEAN)))
    for z in LEAN_LEVELS:
        src = min(f for f in FULL_LEVELS if f >= z)
        expected = _rolled(agreement_id, (src, "y"), (z, "y"), c.day == y, c.day, lean=True)
        out.append(([expected], and_(c.zoom == z, at, c.sector == LEAN)))
    return out


def _levels(
    agreement_id: str, m: dt.date, whole: bool, dialect: str
) -> list[tuple[list[Select[Any]], ColumnElement[bool]]]:
    """For each level of month ``m``'s summary: the queries of what its rows should be (counted
    from the records for the base level, else summed from the stored level it is built from),
    and which stored rows it is. ``whole``: no day of the month is stale (its month rows exist)."""
    c, inc = MapCellRow, IncidentRow
    end = month_end(m)
    month = c.day.between(m, end)
    out: list[tuple[list[Select[Any]], ColumnElement[bool]]] = []

    def level(z: int, period: str, lean: bool, *expected: Select[Any]) -> None:
        at = c.day == m if period == "m" else month
        kind = c.sector == LEAN if lean else c.sector != LEAN
        out.append((list(expected), and_(c.zoom == z, c.period == period, kind, at)))

    level(BASE_ZOOM, "d", False, *_counted(agreement_id, inc.day.between(m, end), dialect))
    for z in FULL_LEVELS:
        if z != BASE_ZOOM:
            level(z, "d", False, _rolled(agreement_id, (BASE_ZOOM, "d"), (z, "d"), month, c.day))
        if whole:
            level(z, "m", False, _rolled(agreement_id, (z, "d"), (z, "m"), month, literal(m)))
    for z in LEAN_LEVELS:
        src = min(f for f in FULL_LEVELS if f >= z)
        level(z, "d", True, _rolled(agreement_id, (src, "d"), (z, "d"), month, c.day, lean=True))
        if whole:
            level(
                z, "m", True, _rolled(agreement_id, (src, "m"), (z, "m"), c.day == m, c.day, lean=True)
            )
    return out


_VALUES = 3  # n, sx, sy: the last columns of _COLS


def _keyed(
    conn: Any, queries: list[Select[Any]], stale: set[dt.date]
) -> tuple[dict[tuple[Any, ...], tuple[float, ...]], set[str]]:
    """Rows of ``queries`` (in ``_COLS`` order) by their key, those of ``stale`` days left out;
    and where a key came twice (a row copied into the summary)."""
    rows: dict[tuple[Any, ...], tuple[float, ...]] = {}
    twice: set[str] = set()
    for q in queries:
        for r in conn.execute(q):
            key = tuple(_plain(v) for v in r[:-_VALUES])
            if key[2] == "d" and key[3] in stale:
                continue
            if key in rows:
                twice.add(_where(key))
            rows[key] = tuple(float(v or 0) for v in r[-_VALUES:])
    return rows, twice


def _plain(v: Any) -> Any:
    if isinstance(v, bool):
        return int(v)
    if isinstance(v, dt.datetime):
        return v.date()
    if isinstance(v, dt.date):
        return v
    if isinstance(v, str) and len(v) == 10 and v[4:5] == "-" and v[7:8] == "-":
        try:
            return dt.date.fromisoformat(v)
        except ValueError:
            return v
    return v


def _where(key: tuple[Any, ...]) -> str:
    named = {"d": "day", "m": "month of", "y": "year of"}
    period = named.get(key[2], f"period {key[2]!r},")
    return f"zoom {key[1]}, {period} {key[3]}"


def _differences(
    want: dict[tuple[Any, ...], tuple[float, ...]], have: dict[tuple[Any, ...], tuple[float, ...]]
) -> set[str]:
    """Where the rows differ: a row missing, one too many, or other sums."""
    bad = {_where(k) for k in want.keys() ^ have.keys()}
    for k in want.keys() & have.keys():
        (n1, *s1), (n2, *s2) = want[k], have[k]
        if n1 != n2 or any(
            not math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-6) for a, b in zip(s1, s2, strict=True)
        ):
            bad.add(_where(k))
    return bad
