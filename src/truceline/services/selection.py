"""A selection of findings and incidents, read three ways: column-wise for the map, counted per
day for the timeline, and as flat records for an export.

One filter (:class:`Selection`) drives all three, through the same query builders
(:func:`_finding_select`, :func:`_incident_select`), so what is downloaded is what is on the screen,
row for row.

What the filter means
---------------------
- Two sets are selected: *findings* (each with its incident's facts) and *incidents without any
  finding* (reports that broke no rule; never shown to liaisons, who see only released findings).
- ``start``/``end`` are inclusive days of the incident (UTC), as in ``GET /findings``.
- ``kinds``, ``sectors``, ``source_types`` select on the incident; ``rules`` on the finding;
  ``parties`` on the party held responsible for a finding, and on the party reported as acting for
  an incident without findings; ``statuses`` on the review status (``new`` is a finding still
  ``open`` or an incident not yet reviewed). Values of one field are OR-ed, fields AND-ed.
- With a ``rules`` filter the incidents without findings drop out (they have no rule).
- ``in_force`` / ``in_area`` (true, false or unset) select on the incident's labels: whether the
  agreement was in force on its day, whether it lies in the area of application (reports stored
  before those labels existed have none and match neither true nor false).

Row-level limits come from the caller's :class:`~truceline.services.auth.Scope` through the same
clauses the list endpoints use (:mod:`truceline.services.scope`), so a liaison's selection holds
the released findings only, and none of the raw reports' own fields.

Columns are returned with categorical columns coded as small integers (``codes`` holds the
values), which keeps 100,000 points to a few megabytes of JSON and lets the browser filter,
cluster and draw them without reshaping. The export's text formats are in
:mod:`truceline.io.features`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
import threading
from collections import OrderedDict
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Integer,
    Select,
    and_,
    case,
    cast,
    exists,
    extract,
    false,
    func,
    or_,
    select,
    true,
)
from sqlalchemy.orm import Session

from truceline.core.probability import icd203_term
from truceline.core.rules import number_columns
from truceline.core.times import utc_isoformat
from truceline.errors import ValidationError
from truceline.services.auth import Scope
from truceline.services.queries import BBox
from truceline.services.review import STATUSES
from truceline.services.scope import finding_clauses, incident_clauses, live_incident_clauses
from truceline.store import map_cells
from truceline.store.db import Database
from truceline.store.map_cells import (
    BASE_ZOOM,
    CELL_PX,
    cell_deg,
    grid_cell,
    month_end,
    month_start,
    year_end,
)
from truceline.store.models import FindingRow, IncidentRow, MapCellRow

__all__ = [
    "CELL_PX",
    "MAX_POINTS",
    "Selection",
    "answer_tag",
    "clusters",
    "export_rows",
    "feature_columns",
    "refresh_map_cells",
    "stale_agreements",
    "start_builds",
    "stop_builds",
    "sum_years",
    "summarise",
    "summarising",
    "timeline",
]

_DAY = dt.timedelta(days=1)
_FINDING_STATUS = {"new": "open"}  # a finding not reviewed yet is "open"; an incident is "new"
#: Most rows one map request returns; beyond it the answer says ``truncated`` (narrow the filter).
MAX_POINTS = 300_000


@dataclass(frozen=True, slots=True)
class Selection:
    """Which findings and incidents are selected (see the module docstring for each field)."""

    agreement_id: str
    start: dt.date | None = None
    end: dt.date | None = None
    kinds: tuple[str, ...] = ()
    rules: tuple[str, ...] = ()
    parties: tuple[str, ...] = ()
    sectors: tuple[str, ...] = ()
    statuses: tuple[str, ...] = ()
    source_types: tuple[str, ...] = ()
    incidents: bool = True  # include the incidents without findings
    in_force: bool | None = None
    in_area: bool | None = None
    bbox: BBox | None = None  # only what lies in this box (west > east crosses 180 degrees)

    def checked(self, scope: Scope) -> Selection:
        """The filter validated for a caller (a liaison may not select by source type)."""
        if self.start and self.end and self.end < self.start:
            raise ValidationError(
                "end is before start", field="end", value=self.end.isoformat(), fix="give end >= start"
            )
        bad = [s for s in self.statuses if s not in STATUSES]
        if bad:
            raise ValidationError(
                f"unknown status {bad[0]!r}",
                field="status",
                value=bad[0],
                fix="use one of " + ", ".join(STATUSES),
            )
        if scope.released_only and self.source_types:
            raise ValidationError(
                "the source of a report is not released to the parties",
                field="source_type",
                fix="drop the source_type filter",
            )
        return self


# -- queries ----------------------------------------------------------------------------------


def _common(flt: Selection) -> list[ColumnElement[bool]]:
    conds: list[ColumnElement[bool]] = [
        IncidentRow.agreement_id == flt.agreement_id,
        *live_incident_clauses(),  # a report withdrawn by its source is on no map or timeline
    ]
    if flt.kinds:
        conds.append(IncidentRow.kind.in_(flt.kinds))
    if flt.sectors:
        conds.append(IncidentRow.sector.in_(flt.sectors))
    if flt.source_types:
        conds.append(IncidentRow.source_type.in_(flt.source_types))
    for flag, want in ((IncidentRow.in_force, flt.in_force), (IncidentRow.in_area, flt.in_area)):
        if want is not None:
            conds.append(flag.is_(true()) if want else flag.is_(false()))
    if flt.bbox is not None:
        conds.append(
            or_(
                *(
                    and_(IncidentRow.lon.between(w, e), IncidentRow.lat.between(s, n))
                    for w, s, e, n in flt.bbox.parts()
                )
            )
        )
    return conds


def _days(flt: Selection) -> list[ColumnElement[bool]]:
    conds: list[ColumnElement[bool]] = []
    if flt.start is not None:
        conds.append(IncidentRow.day >= flt.start)
    if flt.end is not None:
        conds.append(IncidentRow.day <= flt.end)
    return conds


def _finding_conds(flt: Selection, scope: Scope, *, dated: bool = True) -> list[ColumnElement[bool]]:
    conds = _common(flt) + (_days(flt) if dated else []) + finding_clauses(scope)
    if flt.rules:
        conds.append(FindingRow.rule_id.in_(flt.rules))
    if flt.parties:
        conds.append(FindingRow.responsible.in_(flt.parties))
    if flt.statuses:
        conds.append(FindingRow.status.in_([_FINDING_STATUS.get(s, s) for s in flt.statuses]))
    return conds


def _incident_conds(
    flt: Selection, scope: Scope, *, dated: bool = True
) -> list[ColumnElement[bool]] | None:
    """Conditions for the incidents without findings; ``None`` when the filter excludes them all."""
    if not flt.incidents or flt.rules or scope.released_only:
        return None
    conds = _common(flt) + (_days(flt) if dated else [])
    conds.append(~exists().where(FindingRow.incident_pk == IncidentRow.pk))
    if flt.parties:
        conds.append(IncidentRow.party.in_(flt.parties))
    if flt.statuses:
        conds.append(IncidentRow.status.in_(flt.statuses))
    conds.extend(incident_clauses(scope))
    return conds


_F_COLS = (
    FindingRow.pk,
    FindingRow.incident_pk,
    IncidentRow.report_id,
    IncidentRow.observed_at,
    IncidentRow.day,
    IncidentRow.lon,
    IncidentRow.lat,
    IncidentRow.uncertainty_m,
    IncidentRow.kind,
    IncidentRow.weapon_class,
    IncidentRow.sector,
    IncidentRow.source_type,
    FindingRow.rule_id,
    FindingRow.rule_type,
    FindingRow.responsible,
    FindingRow.probability,
    FindingRow.status,
    FindingRow.released_at,
    FindingRow.explanation,
    IncidentRow.side_party,
    IncidentRow.distance_km,
    IncidentRow.narrative,
    FindingRow.numbers,
)
_I_COLS = (
    IncidentRow.pk,
    IncidentRow.report_id,
    IncidentRow.observed_at,
    IncidentRow.day,
    IncidentRow.lon,
    IncidentRow.lat,
    IncidentRow.uncertainty_m,
    IncidentRow.kind,
    IncidentRow.weapon_class,
    IncidentRow.sector,
    IncidentRow.source_type,
    IncidentRow.party,
    IncidentRow.status,
    IncidentRow.side_party,
    IncidentRow.distance_km,
    IncidentRow.narrative,
)


def _finding_select(flt: Selection, scope: Scope, cols: Sequence[Any] = _F_COLS) -> Select[Any]:
    return (
        select(*cols)
        .select_from(FindingRow)
        .join(IncidentRow, FindingRow.incident_pk == IncidentRow.pk)
        .where(*_finding_conds(flt, scope))
        .order_by(FindingRow.pk)
    )


def _incident_select(flt: Selection, scope: Scope, cols: Sequence[Any] = _I_COLS) -> Select[Any] | None:
    conds = _incident_conds(flt, scope)
    if conds is None:
        return None
    return select(*cols).where(*conds).order_by(IncidentRow.pk)


# -- the map ----------------------------------------------------------------------------------


def _epoch(col: Any) -> ColumnElement[int]:
    """A UTC timestamp as whole seconds since 1970, computed by the database (no parsing here).

    64-bit: PostgreSQL's ``integer`` ends in January 2038 (and an incident may be dated after it).
    """
    return cast(extract("epoch", col), BigInteger)


class _Codes:
    """Categorical columns as integer codes into one list of values per field (``None`` -> "")."""

    def __init__(self) -> None:
        self.values: dict[str, list[str]] = {}
        self._index: dict[str, dict[str | None, int]] = {}

    def encode(self, field: str, column: Sequence[str | None]) -> list[int]:
        index = self._index.setdefault(field, {})
        values = self.values.setdefault(field, [])
        for v in dict.fromkeys(column):  # the distinct values, in C; few of them
            if v not in index:
                key = v or ""
                known = values.index(key) if key in values else -1
                index[v] = known if known >= 0 else len(values)
                if known < 0:
                    values.append(key)
        return list(map(index.__getitem__, column))


def _rounded(column: Sequence[float | None], digits: int) -> list[float | None]:
    a = np.array(column, dtype=np.float64)  # None -> nan
    return [None if math.isnan(v) else v for v in np.round(a, digits).tolist()]


def _columns(rows: Sequence[Any], n: int) -> list[tuple[Any, ...]]:
    return list(zip(*rows, strict=True)) if rows else [() for _ in range(n)]


def feature_columns(
    session: Session, flt: Selection, *, scope: Scope, limit: int = MAX_POINTS
) -> dict[str, Any]:
    """The filtered findings and incidents, column-wise, with the timeline of the same filter.

    Returns
    -------
    dict
        ``findings`` and ``incidents`` (columns; ``n`` rows each), ``codes`` (the values of the coded
        columns), ``histogram`` (findings and incidents per day over every day with data, with all
        filters but the dates applied), ``truncated`` (more rows matched than ``limit``). Times
        ``t`` are seconds since 1970 (UTC); ``unc`` is the 1-sigma position error in metres.
    """
    redact = scope.released_only
    codes = _Codes()
    status = case((FindingRow.status == "open", "new"), else_=FindingRow.status)
    f_cols = (
        FindingRow.pk,
        FindingRow.incident_pk,
        _epoch(IncidentRow.observed_at),
        IncidentRow.lon,
        IncidentRow.lat,
        IncidentRow.uncertainty_m,
        IncidentRow.kind,
        IncidentRow.weapon_class,
        IncidentRow.sector,
        IncidentRow.source_type,
        FindingRow.rule_id,
        FindingRow.responsible,
        status,
        FindingRow.probability,
        case((FindingRow.released_at.is_(None), 0), else_=1),
    )
    # Core, not ORM, execution: plain rows without the ORM's per-row bookkeeping (100,000s of them).
    conn = session.connection()
    rows = conn.execute(_finding_select(flt, scope, f_cols).limit(limit + 1)).all()
    truncated = len(rows) > limit
    rows = rows[:limit]
    pk, ipk, t, lon, lat, unc, kind, wc, sector, source, rule, party, st, p, rel = _columns(
        rows, len(f_cols)
    )
    findings: dict[str, Any] = {
        "n": len(rows),
        "pk": list(pk),
        "incident": None if redact else list(ipk),
        "t": list(t),
        "lon": _rounded(lon, 5),
        "lat": _rounded(lat, 5),
        "unc": _rounded(unc, 0),
        "kind": codes.encode("kind", kind),
        "wc": codes.encode("wc", wc),
        "sector": codes.encode("sector", sector),
        "source": None if redact else codes.encode("source", source),
        "rule": codes.encode("rule", rule),
        "party": codes.encode("party", party),
        "status": codes.encode("status", st),
        "p": _rounded(p, 4),
        "released": list(map(bool, rel)),
    }
    i_cols = (
        IncidentRow.pk,
        _epoch(IncidentRow.observed_at),
        IncidentRow.lon,
        IncidentRow.lat,
        IncidentRow.uncertainty_m,
        IncidentRow.kind,
        IncidentRow.weapon_class,
        IncidentRow.sector,
        IncidentRow.source_type,
        IncidentRow.party,
        IncidentRow.status,
    )
    irows: Sequence[Any] = []
    i_sel = _incident_select(flt, scope, i_cols)
    if i_sel is not None:
        room = max(limit - len(rows), 0)
        irows = conn.execute(i_sel.limit(room + 1)).all()
        truncated = truncated or len(irows) > room
        irows = irows[:room]
    ipk2, t2, lon2, lat2, unc2, kind2, wc2, sector2, source2, party2, status2 = _columns(
        irows, len(i_cols)
    )
    incidents = {
        "n": len(irows),
        "pk": list(ipk2),
        "t": list(t2),
        "lon": _rounded(lon2, 5),
        "lat": _rounded(lat2, 5),
        "unc": _rounded(unc2, 0),
        "kind": codes.encode("kind", kind2),
        "wc": codes.encode("wc", wc2),
        "sector": codes.encode("sector", sector2),
        "source": codes.encode("source", source2),
        "party": codes.encode("party", party2),
        "status": codes.encode("status", status2),
    }
    return {
        "findings": findings,
        "incidents": incidents,
        "codes": codes.values,
        "histogram": timeline(session, flt, scope=scope),
        "truncated": truncated,
        "limit": limit,
    }


def timeline(
    session: Session, flt: Selection, *, scope: Scope, from_rows: bool = False
) -> dict[str, Any]:
    """Findings and incidents without findings per day, every filter but the dates applied, and
    the findings per day of each rule (``by_rule``).

    Days run without gaps from the first to the last day with data (at most 1,000 days back from
    the last). Read from the map's summary (``map_cells``) when it is fresh and the caller sees
    every row, else from the rows (``from_rows``: always, to compare the two).
    """
    key = None if from_rows else _cache_key(session, flt, scope, "timeline")
    if key is not None:
        return _cached(key, lambda: _timeline_from_cells(session, flt, scope))
    fq = (
        select(IncidentRow.day, FindingRow.rule_id, func.count())
        .select_from(FindingRow)
        .join(IncidentRow, FindingRow.incident_pk == IncidentRow.pk)
        .where(*_finding_conds(flt, scope, dated=False))
        .group_by(IncidentRow.day, FindingRow.rule_id)
    )
    per_f = [(d, r, int(n)) for d, r, n in session.execute(fq)]
    per_i: list[tuple[dt.date, int]] = []
    iconds = _incident_conds(flt, scope, dated=False)
    if iconds is not None:
        iq = select(IncidentRow.day, func.count()).where(*iconds).group_by(IncidentRow.day)
        per_i = [(d, int(n)) for d, n in session.execute(iq)]
    return _days_out(per_f, per_i)


def _timeline_from_cells(session: Session, flt: Selection, scope: Scope) -> dict[str, Any]:
    c = MapCellRow
    per_f: list[tuple[dt.date, str, int]] = []
    per_i: list[tuple[dt.date, int]] = []
    base, lean = _cell_level(flt, 0)
    for where in _cell_conds(flt, scope, zoom=base, lean=lean, dated=False):
        q = (
            select(c.day, c.finding, c.rule_id, func.sum(c.n))
            .where(where)
            .group_by(c.day, c.finding, c.rule_id)
        )
        for d, is_f, r, n in session.execute(q):
            if is_f:
                per_f.append((d, r, int(n)))
            else:
                per_i.append((d, int(n)))
    return _days_out(per_f, per_i)


def _days_out(
    per_f: Sequence[tuple[dt.date, str, int]], per_i: Sequence[tuple[dt.date, int]]
) -> dict[str, Any]:
    seen = {d for d, _, _ in per_f} | {d for d, _ in per_i}
    if not seen:
        return {"days": [], "findings": [], "incidents": [], "by_rule": {}}
    last = max(seen)
    first = min(seen)
    if (last - first).days > 999:
        first = last - dt.timedelta(days=999)
    m = (last - first).days + 1
    findings = np.zeros(m, dtype=np.int64)
    incidents = np.zeros(m, dtype=np.int64)
    by_rule: dict[str, Any] = {}
    for d, r, n in per_f:
        k = (d - first).days
        if k >= 0:
            findings[k] += n
            by_rule.setdefault(r, np.zeros(m, dtype=np.int64))[k] += n
    for d, n in per_i:
        k = (d - first).days
        if k >= 0:
            incidents[k] += n
    return {
        "days": [(first + dt.timedelta(days=k)).isoformat() for k in range(m)],
        "findings": findings.tolist(),
        "incidents": incidents.tolist(),
        "by_rule": {r: v.tolist() for r, v in sorted(by_rule.items())},
    }


# -- clusters for a year's scale ----------------------------------------------------------------

#: Map answers (clusters, timelines) per filter, keyed by the summary's version: a rebuild (after
#: any write to a day) makes every older entry unreachable, and the oldest fall out first.
_CACHE: OrderedDict[tuple[Any, ...], dict[str, Any]] = OrderedDict()
_CACHE_SIZE = 512
_CACHE_LOCK = threading.Lock()


#: Most stale days a map request rebuilds itself before it reads (an ingest's few days); more (a
#: first build after the upgrade, a big import) are built in the background, in steps, while the
#: map's answers are counted from the rows (correct, slower).
REQUEST_DAYS = 7
#: Days per step of a build (each step one write transaction: a short write lock, resumable).
STEP_DAYS = 3
_BUILDS: dict[tuple[str, str], tuple[threading.Thread, threading.Event]] = {}
_BUILDS_LOCK = threading.Lock()


def refresh_map_cells(db: Database, agreement_id: str) -> list[dt.date]:
    """Bring the map's summary up to date before a map request reads it; returns the days rebuilt.

    Up to :data:`REQUEST_DAYS` stale days are rebuilt here (none stale: a read only, no write
    transaction), and their years summed again in the background (the map reads those years'
    months meanwhile); more start :func:`summarise` in a background thread (one per database
    and agreement) and return at once: until it ends the map's answers are counted from the rows.
    """
    with db.read() as s:
        stale = map_cells.stale_days(s, agreement_id)
    if stale == 0:
        return []
    days: list[dt.date] = []
    if stale <= REQUEST_DAYS:
        days = db.write(lambda s: map_cells.refresh(s, agreement_id))
    _build_in_background(db, agreement_id)
    return days


def _build_in_background(db: Database, agreement_id: str) -> None:
    key = (str(db.write_engine.url), agreement_id)
    with _BUILDS_LOCK:
        running = _BUILDS.get(key)
        if running is None or not running[0].is_alive():
            stop = threading.Event()
            t = threading.Thread(
                target=summarise,
                args=(db, agreement_id),
                kwargs={"stop": stop},
                name=f"map-summary-{agreement_id}",
                daemon=True,
            )
            _BUILDS[key] = (t, stop)
            t.start()


def start_builds(db: Database) -> dict[str, int]:
    """Start a background build (:func:`summarise`) of every agreement whose map summary has days
    waiting (missing after an upgrade, or stale after writes made while no server ran); returns
    the agreements started and their days. A server calls it at start-up, so the first map
    request finds the summary built or being built; the map counts the rows meanwhile."""
    waiting = stale_agreements(db)
    with db.read() as s:  # and those whose years are not summed (built before years were)
        summing = [a for a in map_cells.version_by_agreement(s) if map_cells.unsummed_years(s, a)]
    for agreement_id in {*waiting, *summing}:
        _build_in_background(db, agreement_id)
    return waiting


def summarising(db: Database, agreement_id: str, *, wait: float | None = 0.0) -> bool:
    """Whether a background build of the agreement's summary runs (after waiting up to ``wait``
    seconds for it to end; ``None``: until it ends)."""
    with _BUILDS_LOCK:
        running = _BUILDS.get((str(db.write_engine.url), agreement_id))
    if running is None:
        return False
    if wait is None or wait > 0:
        running[0].join(wait)
    return running[0].is_alive()


def stop_builds(db: Database) -> None:
    """Stop the background builds on ``db`` after their current step, and wait for them (before
    the database is released: a server's shutdown). The days left stay marked: resumed later."""
    url = str(db.write_engine.url)
    with _BUILDS_LOCK:
        mine = [(k, v) for k, v in _BUILDS.items() if k[0] == url]
        for k, _ in mine:
            del _BUILDS[k]
    for _, (_t, stop) in mine:
        stop.set()
    for _, (t, _stop) in mine:
        t.join()


def stale_agreements(db: Database) -> dict[str, int]:
    """The agreements whose map summary has days waiting to be built, and how many each."""
    with db.read() as s:
        return map_cells.stale_by_agreement(s)


def sum_years(db: Database) -> dict[str, int]:
    """Sum the years of every agreement whose days are all built but whose years are not (a
    summary built before it held years); returns the agreements and how many years each."""
    with db.read() as s:
        agreements = list(map_cells.version_by_agreement(s))
    out: dict[str, int] = {}
    for agreement_id in agreements:

        def step(s: Session, a: str = agreement_id) -> list[dt.date]:
            return map_cells.sum_years(s, a)

        years = db.write(step)
        if years:
            out[agreement_id] = len(years)
    if out:
        db.write(map_cells.analyse)
    return out


def mark_for_rebuild(db: Database) -> int:
    """Mark every day of the map's summary as waiting to be built again (``db summarise
    --rebuild``: after :func:`truceline.store.ledger.verify` found a summary row that differs
    from the records it sums); returns the days marked."""
    return db.write(map_cells.mark_all)


def summarise(
    db: Database,
    agreement_id: str,
    *,
    step: int = STEP_DAYS,
    progress: Callable[[int, int], None] | None = None,
    stop: threading.Event | None = None,
) -> int:
    """Build the agreement's map summary: every stale day, oldest first, ``step`` days per write
    transaction (so an interrupted build resumes where it stopped, and writers wait at most one
    step); returns the days built. ``progress(done, total)`` after each step (``total`` grows if
    writes mark more days meanwhile). ``stop``: set, the build ends after the current step."""
    done = 0
    with db.read() as s:
        total = map_cells.stale_days(s, agreement_id)
    if progress is not None:
        progress(0, total)
    while stop is None or not stop.is_set():
        days = db.write(lambda s: map_cells.refresh(s, agreement_id, limit=step))
        if not days:
            break
        done += len(days)
        if progress is not None:
            with db.read() as s:
                total = done + map_cells.stale_days(s, agreement_id)
            progress(done, total)
    if stop is None or not stop.is_set():
        # The years whose days are all built: their months summed, once (see map_cells.sum_years).
        years = db.write(lambda s: map_cells.sum_years(s, agreement_id))
    else:
        years = []
    if done or years:
        db.write(map_cells.analyse)
    return done


def _cache_key(session: Session, flt: Selection, scope: Scope, what: Any) -> tuple[Any, ...] | None:
    """The cache key of a map answer read from the summary; ``None``: read the rows instead (a
    box, a caller who sees part of the rows, or a summary with days waiting to be rebuilt)."""
    if flt.bbox is not None or (scope.restricted and not scope.released_only):
        return None
    if map_cells.is_stale(session, flt.agreement_id):
        return None
    version = map_cells.version(session, flt.agreement_id)
    # The database's address and the version (nanoseconds): a database made again at the same
    # address has a later version, so nothing of the one before is answered.
    return (str(session.get_bind().engine.url), version, what, scope.released_only, flt)


def answer_tag(session: Session, flt: Selection, scope: Scope, *, zoom: int | None = None) -> str | None:
    """An HTTP entity tag of the map answer to ``flt`` (the clusters at ``zoom``, or the timeline
    when ``zoom`` is None): the same while the summary's version is, so a browser that holds the
    answer is told "not modified" without it being computed or sent again. ``None`` when the
    answer is counted from the rows (a box, a monitor, a summary with days waiting, a zoom
    finer than the summary's): those are never tagged."""
    if zoom is not None and zoom > BASE_ZOOM:
        return None
    key = _cache_key(session, flt, scope, "timeline" if zoom is None else zoom)
    if key is None:
        return None
    return '"' + hashlib.sha256(repr(key).encode()).hexdigest()[:32] + '"'


def _cached(key: tuple[Any, ...], compute: Any) -> dict[str, Any]:
    with _CACHE_LOCK:
        hit = _CACHE.get(key)
        if hit is not None:
            _CACHE.move_to_end(key)
            return hit
    out: dict[str, Any] = compute()
    with _CACHE_LOCK:
        _CACHE[key] = out
        while len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    return out


def _periods(flt: Selection, years: Collection[dt.date] = ()) -> list[ColumnElement[bool]]:
    """The summary's rows of the selected days, as simple ranges (each one range of the index):
    the years wholly inside them whose rows are summed (``years``: their 1st of January), the
    other months wholly inside them, and the days of the months cut by ``start`` or ``end``."""
    c = MapCellRow
    start, end = flt.start, flt.end
    # The first and the last whole month (their first days); None: no bound on that side.
    lo = None if start is None else start if start.day == 1 else month_end(start) + _DAY
    if end is None:
        hi = None
    elif end == month_end(end):
        hi = month_start(end)
    else:
        hi = month_start(month_start(end) - _DAY)
    if lo is not None and hi is not None and lo > hi:  # no whole month: the days
        return [and_(c.period == "d", *_between(start, end))]
    # Whole years read as one row per cell and value rather than one per month (a year's
    # overview at the finest levels), the months around them as months.
    whole = sorted(
        y for y in years if (lo is None or lo <= y) and (hi is None or month_start(year_end(y)) <= hi)
    )
    out = [and_(c.period == "y", c.day.in_(whole))] if whole else []
    first: dt.date | None = lo
    for y in whole:
        if first is None or first < y:
            out.append(and_(c.period == "m", *_between(first, y - _DAY)))
        first = year_end(y) + _DAY
    if first is None or hi is None or first <= hi:
        out.append(and_(c.period == "m", *_between(first, hi)))
    if lo is not None and start is not None and start < lo:
        out.append(and_(c.period == "d", *_between(start, lo - _DAY)))
    if hi is not None and end is not None and end > month_end(hi):
        out.append(and_(c.period == "d", *_between(month_end(hi) + _DAY, end)))
    return out


def _between(lo: dt.date | None, hi: dt.date | None) -> list[ColumnElement[bool]]:
    c = MapCellRow
    return [*([c.day >= lo] if lo else []), *([c.day <= hi] if hi else [])]


def _cell_level(flt: Selection, zoom: int) -> tuple[int, bool]:
    """The summary's level that answers ``zoom`` for the filter, and whether its lean rows do."""
    return map_cells.level(zoom, lean=not flt.sectors and not flt.source_types)


def _cell_conds(
    flt: Selection,
    scope: Scope,
    *,
    zoom: int,
    lean: bool,
    dated: bool = True,
    years: Collection[dt.date] = (),
) -> list[ColumnElement[bool]]:
    """The filter on the summary's rows at level ``zoom`` (``lean``: its lean rows, else its full
    rows), as clauses each read with one range of its index (the rows each selects are
    disjoint): per range of days (``years``: those whose rows are summed), the findings and the
    incidents without findings (unless the filter leaves them out) together."""
    c = MapCellRow
    common: list[ColumnElement[bool]] = [c.agreement_id == flt.agreement_id, c.zoom == zoom]
    if flt.kinds:
        common.append(c.kind.in_(flt.kinds))
    if flt.sectors:
        common.append(c.sector.in_(flt.sectors))
    if flt.source_types:
        common.append(c.source_type.in_(flt.source_types))
    if lean:
        common.append(c.sector == map_cells.LEAN)  # the lean rows: sectors and sources summed
    elif zoom in map_cells.LEAN_LEVELS:
        common.append(c.sector != map_cells.LEAN)  # the full rows beside them
    for flag, want in ((c.in_force, flt.in_force), (c.in_area, flt.in_area)):
        if want is not None:
            common.append(flag.is_(true()) if want else flag.is_(false()))
    fc = [c.finding == 1]
    if scope.released_only:
        fc.append(c.released == 1)
    if flt.rules:
        fc.append(c.rule_id.in_(flt.rules))
    if flt.parties:
        fc.append(c.party.in_(flt.parties))
    if flt.statuses:
        fc.append(c.status.in_([_FINDING_STATUS.get(x, x) for x in flt.statuses]))
    sets = [fc]
    if flt.incidents and not flt.rules and not scope.released_only:
        ic = [c.finding == 0]
        if flt.parties:
            ic.append(c.party.in_(flt.parties))
        if flt.statuses:
            ic.append(c.status.in_(flt.statuses))
        sets.append(ic)
    periods = _periods(flt, years) if dated else [c.period == "d"]
    # Both sets in one read of each range (a condition on ``finding`` narrows no range of the
    # index: two reads would visit every row of the range twice).
    either = or_(*(and_(*one) for one in sets))
    return [and_(*common, p, either) for p in periods]


def clusters(
    session: Session, flt: Selection, *, scope: Scope, zoom: int, from_rows: bool = False
) -> dict[str, Any]:
    """The selection counted per grid cell (``CELL_PX`` pixels at ``zoom``), by the database.

    Up to ``BASE_ZOOM``, and for callers who see every row (or the released findings), read from
    the map's summary (``map_cells``: counts per day, base cell and filtered field) and cached per
    filter until the next write; otherwise one ``GROUP BY`` on the snapped grid of the rows per set
    (findings: by responsible party, rule and kind; incidents without findings: by kind). Either
    way the answer's size depends on the cells, not on the rows.

    Returns
    -------
    dict
        ``zoom``, ``cell_deg`` (the cell's side), ``n`` cells, and per cell (columns): ``lon``,
        ``lat`` (the mean position of what it holds), ``findings``, ``incidents`` (without
        findings), ``gx``, ``gy`` (the cell: west edge ``gx * cell_deg - 180``, south edge ``gy *
        cell_deg - 90``); ``by_party``, ``by_rule`` (findings) and ``by_kind`` (both sets): a
        column of counts per value. Totals equal :func:`feature_columns`'s ``n`` for the same filter.
        ``from_rows``: count the rows even where the summary could answer (to compare the two).
    """
    key = _cache_key(session, flt, scope, zoom) if zoom <= BASE_ZOOM and not from_rows else None
    if key is not None:
        return _cached(key, lambda: _clusters_from_cells(session, flt, scope, zoom))
    size = cell_deg(zoom)
    dialect = session.get_bind().dialect.name
    gx = grid_cell(IncidentRow.lon, 180.0, size, dialect).label("gx")
    gy = grid_cell(IncidentRow.lat, 90.0, size, dialect).label("gy")
    n, sx, sy = func.count(), func.sum(IncidentRow.lon), func.sum(IncidentRow.lat)
    conn = session.connection()
    fq = (
        select(gx, gy, FindingRow.responsible, FindingRow.rule_id, IncidentRow.kind, n, sx, sy)
        .select_from(FindingRow)
        .join(IncidentRow, FindingRow.incident_pk == IncidentRow.pk)
        .where(*_finding_conds(flt, scope))
        .group_by(gx, gy, FindingRow.responsible, FindingRow.rule_id, IncidentRow.kind)
    )
    frows = conn.execute(fq).all()
    irows: Sequence[Any] = []
    iconds = _incident_conds(flt, scope)
    if iconds is not None:
        iq = (
            select(gx, gy, IncidentRow.kind, n, sx, sy).where(*iconds).group_by(gx, gy, IncidentRow.kind)
        )
        irows = conn.execute(iq).all()
    return _cells_out(zoom, frows, irows)


def _within_data(session: Session, flt: Selection, zoom: int) -> Selection:
    """The filter without the date bounds that no day of the summary's level ``zoom`` lies
    beyond (a year's overview selects from the first day with data to the last): the same rows,
    read as whole months (one short range of the index each) rather than the days of the months
    the bounds cut (tens of thousands of rows at the finer levels)."""
    if flt.start is None and flt.end is None:
        return flt
    c = MapCellRow
    level = (c.agreement_id == flt.agreement_id, c.zoom == zoom, c.period == "d")
    first = session.execute(select(func.min(c.day)).where(*level)).scalar()
    last = session.execute(select(func.max(c.day)).where(*level)).scalar()
    if first is None or last is None:
        return flt
    first, last = map_cells.as_date(first), map_cells.as_date(last)
    start = None if flt.start is not None and flt.start <= first else flt.start
    end = None if flt.end is not None and flt.end >= last else flt.end
    return replace(flt, start=start, end=end)


def _clusters_from_cells(session: Session, flt: Selection, scope: Scope, zoom: int) -> dict[str, Any]:
    c = MapCellRow
    base, lean = _cell_level(flt, zoom)
    flt = _within_data(session, flt, base)
    shift = base - zoom
    cx = c.gx.op(">>", return_type=Integer)(shift) if shift else c.gx
    cy = c.gy.op(">>", return_type=Integer)(shift) if shift else c.gy
    keys = (cx, cy, c.finding, c.party, c.rule_id, c.kind)
    frows: list[tuple[Any, ...]] = []
    irows: list[tuple[Any, ...]] = []
    conn = session.connection()
    years = map_cells.summed_years(session, flt.agreement_id, base)
    # one cell's rows may come from several clauses (periods)
    for where in _cell_conds(flt, scope, zoom=base, lean=lean, years=years):
        q = select(*keys, func.sum(c.n), func.sum(c.sx), func.sum(c.sy)).where(where).group_by(*keys)
        for x, y, is_f, party, rule, kind, n, sx, sy in conn.execute(q):
            if is_f:
                frows.append((x, y, party, rule, kind, n, sx, sy))
            else:
                irows.append((x, y, kind, n, sx, sy))
    return _cells_out(zoom, frows, irows)


def _cells_out(zoom: int, frows: Sequence[Any], irows: Sequence[Any]) -> dict[str, Any]:
    """The answer of :func:`clusters` from the counted rows: findings ``(gx, gy, party, rule,
    kind, n, sum lon, sum lat)`` and incidents ``(gx, gy, kind, n, sum lon, sum lat)``."""
    fgx, fgy, party, rule, fkind, fn, fsx, fsy = _columns(frows, 8)
    igx, igy, ikind, inn, isx, isy = _columns(irows, 6)
    cx = np.array(fgx + igx, dtype=np.int64)
    cy = np.array(fgy + igy, dtype=np.int64)
    count = np.array(fn + inn, dtype=np.float64)
    is_f = np.arange(len(cx)) < len(frows)
    cells, inv = np.unique(np.stack([cx, cy], axis=1), axis=0, return_inverse=True)
    inv = inv.reshape(-1)
    m = len(cells)

    def per_cell(weights: Any) -> Any:
        return np.bincount(inv, weights=weights, minlength=m)

    total = per_cell(count)
    lon = per_cell(np.array(fsx + isx, dtype=np.float64)) / np.maximum(total, 1)
    lat = per_cell(np.array(fsy + isy, dtype=np.float64)) / np.maximum(total, 1)

    def by(values: Sequence[str | None], mask: Any) -> dict[str, list[int]]:
        vals = np.array([v or "" for v in values], dtype=object)
        out: dict[str, list[int]] = {}
        for v in sorted(set(vals[mask].tolist())):  # a handful of parties, rules or kinds
            out[v] = per_cell(np.where(mask & (vals == v), count, 0.0)).astype(np.int64).tolist()
        return out

    pad = [None] * len(irows)
    return {
        "zoom": zoom,
        "cell_deg": cell_deg(zoom),
        "n": m,
        "gx": cells[:, 0].tolist() if m else [],
        "gy": cells[:, 1].tolist() if m else [],
        "lon": np.round(lon, 5).tolist(),
        "lat": np.round(lat, 5).tolist(),
        "findings": per_cell(np.where(is_f, count, 0.0)).astype(np.int64).tolist(),
        "incidents": per_cell(np.where(is_f, 0.0, count)).astype(np.int64).tolist(),
        "by_party": by(list(party) + pad, is_f),
        "by_rule": by(list(rule) + pad, is_f),
        "by_kind": by(list(fkind) + list(ikind), np.ones(len(cx), dtype=bool)),
    }


# -- exports ----------------------------------------------------------------------------------


def export_rows(session: Session, flt: Selection, *, scope: Scope) -> Iterator[dict[str, Any]]:
    """The selection as flat records, findings first, in pk order.

    The keys are :data:`~truceline.io.features.SELECTION_COLUMNS`, whose ``export_csv`` and
    ``export_geojson`` write them.
    """
    redact = scope.released_only
    q = _finding_select(flt, scope).execution_options(yield_per=2000)
    for r in session.execute(q):
        (pk, ipk, report_id, t, day, lon, lat, unc, kind, wc, sector, source, rule_id, rule_type,
         resp, p, status, released, expl, side, dist, narrative, numbers) = r  # fmt: skip
        yield {
            "record": "finding",
            "finding_pk": pk,
            "incident_pk": None if redact else ipk,
            "report_id": None if redact else report_id,
            "observed_at": utc_isoformat(t),
            "day": day.isoformat(),
            "lon": lon,
            "lat": lat,
            "uncertainty_m": unc,
            "kind": kind,
            "weapon_class": wc,
            "sector": sector,
            "source_type": None if redact else source,
            "side_party": side,
            "distance_km": round(dist, 3),
            "rule_id": rule_id,
            "rule_type": rule_type,
            "responsible": resp,
            "probability": p,
            "likelihood": str(icd203_term(p)),
            "status": "new" if status == "open" else status,
            "released": released is not None,
            "explanation": expl,
            **number_columns(numbers),
            "party": None,
            "narrative": None if redact else narrative,
        }
    isel = _incident_select(flt, scope)
    if isel is None:
        return
    for r in session.execute(isel.execution_options(yield_per=2000)):
        (pk, report_id, t, day, lon, lat, unc, kind, wc, sector, source, party, status, side,
         dist, narrative) = r  # fmt: skip
        yield {
            "record": "incident",
            "finding_pk": None,
            "incident_pk": pk,
            "report_id": report_id,
            "observed_at": utc_isoformat(t),
            "day": day.isoformat(),
            "lon": lon,
            "lat": lat,
            "uncertainty_m": unc,
            "kind": kind,
            "weapon_class": wc,
            "sector": sector,
            "source_type": source,
            "side_party": side,
            "distance_km": round(dist, 3),
            "rule_id": None,
            "rule_type": None,
            "responsible": None,
            "probability": None,
            "likelihood": None,
            "status": status,
            "released": None,
            "explanation": None,
            **number_columns(None),
            "party": party,
            "narrative": narrative,
        }
