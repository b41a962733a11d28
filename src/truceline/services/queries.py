"""Reading the store for the API: filtered, paginated lists, single records, daily statistics.

Every query takes the caller's :class:`~truceline.services.auth.Scope` and applies its row-level
rules (:mod:`truceline.services.scope`): a monitor sees the incidents of their sector (and their
own submissions), a liaison only findings released to the parties. A record outside the scope is
reported as not found, so its existence does not leak.

Bounding boxes use the PostGIS ``geom`` column and its GiST index on PostgreSQL, and the
``(lon, lat)`` B-tree index on SQLite; a box whose west edge is east of its east edge crosses the
antimeridian and is split in two.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, and_, case, exists, false, func, literal_column, or_, select, true
from sqlalchemy.orm import Session

from truceline.core.incidents import utc_time
from truceline.core.probability import VIOLATION_P
from truceline.errors import NotFoundError, ValidationError
from truceline.services.auth import Scope
from truceline.services.events import day_event_counts, day_expected_events
from truceline.services.scope import (
    counted_incident_clauses,
    finding_clauses,
    incident_clauses,
    live_incident_clauses,
    released_finding_clauses,
)
from truceline.store.models import FindingRow, IncidentRow

__all__ = [
    "FindingFilter",
    "IncidentFilter",
    "Page",
    "count_incidents",
    "daily_statistics",
    "decode_cursor",
    "encode_cursor",
    "get_finding",
    "get_incident",
    "incident_conditions",
    "list_findings",
    "list_incidents",
    "time_bound",
]


def time_bound(t: dt.datetime | None, name: str) -> dt.datetime | None:
    """A query's time parameter ``name`` in UTC, or a 422 naming it (no offset, or outside the
    times a report may carry: :data:`~truceline.core.incidents.OBSERVED_MIN` .. ``OBSERVED_MAX``)."""
    if t is None:
        return None
    try:
        return utc_time(t, end_inclusive=True)
    except ValueError as exc:
        raise ValidationError(
            f"{name} {exc}", field=name, value=t.isoformat(), fix="e.g. 2025-03-01T00:00:00Z"
        ) from None


def encode_cursor(pk: int) -> str:
    return base64.urlsafe_b64encode(f"pk:{pk}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> int:
    """The last pk of the previous page (0: from the start)."""
    if not cursor:
        return 0
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        kind, _, num = raw.partition(":")
        if kind != "pk" or not num.isdigit() or len(num) > 10 or int(num) >= 2**31:
            raise ValueError(raw)  # keys are 32-bit: a larger one was never issued
        return int(num)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise ValidationError(
            "not a cursor issued by this server",
            field="cursor",
            value=cursor,
            fix="pass the next_cursor of the previous page unchanged, or omit it for the first page",
        ) from None


@dataclass(frozen=True, slots=True)
class BBox:
    """A WGS84 box; ``west > east`` crosses the antimeridian."""

    west: float
    south: float
    east: float
    north: float

    @classmethod
    def parse(cls, text: str) -> BBox:
        fix = "give bbox=west,south,east,north in WGS84 degrees, e.g. 36.5,47.8,38.2,48.9"
        try:
            parts = [float(p) for p in text.split(",")]
        except ValueError:
            raise ValidationError("bbox holds a non-number", field="bbox", value=text, fix=fix) from None
        if len(parts) != 4:
            raise ValidationError(
                f"bbox has {len(parts)} numbers, not 4", field="bbox", value=text, fix=fix
            )
        w, s, e, n = parts
        if not all(-180 <= x <= 180 for x in (w, e)) or not all(-90 <= y <= 90 for y in (s, n)):
            raise ValidationError(
                "bbox is outside -180..180, -90..90", field="bbox", value=text, fix=fix
            )
        if s > n:
            raise ValidationError("bbox south is north of north", field="bbox", value=text, fix=fix)
        return cls(w, s, e, n)

    def parts(self) -> list[tuple[float, float, float, float]]:
        if self.west <= self.east:
            return [(self.west, self.south, self.east, self.north)]
        return [(self.west, self.south, 180.0, self.north), (-180.0, self.south, self.east, self.north)]


def _bbox_clause(box: BBox, dialect: str) -> ColumnElement[bool]:
    clauses: list[ColumnElement[bool]] = []
    for w, s, e, n in box.parts():
        if dialect == "postgresql":
            # `geom && envelope` is answered from the GiST index (migration 0004).
            env = func.ST_MakeEnvelope(w, s, e, n, 4326)
            clauses.append(literal_column("incidents.geom").op("&&")(env))
        else:
            clauses.append(and_(IncidentRow.lon.between(w, e), IncidentRow.lat.between(s, n)))
    return or_(*clauses)


@dataclass(frozen=True, slots=True)
class IncidentFilter:
    agreement_id: str
    bbox: BBox | None = None
    start: dt.datetime | None = None
    end: dt.datetime | None = None
    kind: Sequence[str] = ()
    party: str | None = None
    sector: str | None = None
    rule: str | None = None
    status: str | None = None
    source_type: str | None = None
    #: True / False: only reports labelled so (rows stored before migration 0009 have no
    #: ``in_force`` label, NULL, and match neither); None: no condition.
    in_force: bool | None = None
    in_area: bool | None = None
    #: False (default): the live reports; True: only those withdrawn by their source; None: both.
    withdrawn: bool | None = False


@dataclass(slots=True)
class Page:
    items: list[Any] = field(default_factory=list)
    next_cursor: str | None = None


def incident_conditions(
    session: Session, flt: IncidentFilter, *, scope: Scope
) -> list[ColumnElement[bool]]:
    """The WHERE clauses of a filter and a scope (shared by lists, counts and exports)."""
    conds: list[ColumnElement[bool]] = [IncidentRow.agreement_id == flt.agreement_id]
    dialect = session.get_bind().dialect.name
    if flt.bbox is not None:
        conds.append(_bbox_clause(flt.bbox, dialect))
    if flt.start is not None:
        conds.append(IncidentRow.observed_at >= flt.start)
    if flt.end is not None:
        conds.append(IncidentRow.observed_at < flt.end)
    if flt.kind:
        conds.append(IncidentRow.kind.in_(list(flt.kind)))
    for col, value in (
        (IncidentRow.party, flt.party),
        (IncidentRow.sector, flt.sector),
        (IncidentRow.status, flt.status),
        (IncidentRow.source_type, flt.source_type),
    ):
        if value is not None:
            conds.append(col == value)
    for flag, want in ((IncidentRow.in_force, flt.in_force), (IncidentRow.in_area, flt.in_area)):
        if want is not None:
            conds.append(flag.is_(true()) if want else flag.is_(false()))
    if flt.rule is not None:
        conds.append(
            exists().where(FindingRow.incident_pk == IncidentRow.pk, FindingRow.rule_id == flt.rule)
        )
    if flt.withdrawn is False:
        conds.extend(live_incident_clauses())
    elif flt.withdrawn:
        conds.append(IncidentRow.withdrawn_at.is_not(None))
    conds.extend(incident_clauses(scope))
    return conds


def count_incidents(session: Session, flt: IncidentFilter, *, scope: Scope) -> int:
    """How many incidents the filter selects for this scope (all pages)."""
    q = (
        select(func.count())
        .select_from(IncidentRow)
        .where(*incident_conditions(session, flt, scope=scope))
    )
    return int(session.execute(q).scalar_one())


def list_incidents(
    session: Session, flt: IncidentFilter, *, scope: Scope, cursor: str | None, limit: int
) -> Page:
    """A page of incidents in ``pk`` order, filtered; ``next_cursor`` is ``None`` on the last page."""
    conds = [*incident_conditions(session, flt, scope=scope), IncidentRow.pk > decode_cursor(cursor)]
    rows = list(
        session.execute(
            select(IncidentRow).where(*conds).order_by(IncidentRow.pk).limit(limit + 1)
        ).scalars()
    )
    more = len(rows) > limit
    rows = rows[:limit]
    return Page(rows, encode_cursor(rows[-1].pk) if more and rows else None)


def get_incident(session: Session, pk: int, *, scope: Scope) -> IncidentRow:
    q = select(IncidentRow).where(IncidentRow.pk == pk, *incident_clauses(scope))
    row = session.execute(q).scalar_one_or_none()
    if row is None:
        raise NotFoundError(
            f"no incident {pk}", field="pk", value=pk, fix="list incidents to find its pk"
        )
    return row


def findings_of(session: Session, incident_pk: int, *, scope: Scope) -> list[FindingRow]:
    q = (
        select(FindingRow)
        .where(FindingRow.incident_pk == incident_pk, *released_finding_clauses(scope))
        .order_by(FindingRow.pk)
    )
    return list(session.execute(q).scalars())


@dataclass(frozen=True, slots=True)
class FindingFilter:
    agreement_id: str
    start: dt.date | None = None
    end: dt.date | None = None
    rule: str | None = None
    responsible: str | None = None
    status: str | None = None
    released: bool | None = None
    min_probability: float | None = None
    sector: str | None = None


def list_findings(
    session: Session, flt: FindingFilter, *, scope: Scope, cursor: str | None, limit: int
) -> Page:
    """A page of (finding, incident) pairs in finding ``pk`` order."""
    after = decode_cursor(cursor)
    conds: list[ColumnElement[bool]] = [
        IncidentRow.agreement_id == flt.agreement_id,
        FindingRow.pk > after,
        *finding_clauses(scope),
    ]
    if flt.start is not None:
        conds.append(IncidentRow.day >= flt.start)
    if flt.end is not None:
        conds.append(IncidentRow.day <= flt.end)
    for col, value in (
        (FindingRow.rule_id, flt.rule),
        (FindingRow.responsible, flt.responsible),
        (FindingRow.status, flt.status),
        (IncidentRow.sector, flt.sector),
    ):
        if value is not None:
            conds.append(col == value)
    if flt.released is not None:
        conds.append(
            FindingRow.released_at.is_not(None) if flt.released else FindingRow.released_at.is_(None)
        )
    if flt.min_probability is not None:
        conds.append(FindingRow.probability >= flt.min_probability)
    q = (
        select(FindingRow, IncidentRow)
        .join(IncidentRow, FindingRow.incident_pk == IncidentRow.pk)
        .where(*conds)
        .order_by(FindingRow.pk)
        .limit(limit + 1)
    )
    rows = [(f, i) for f, i in session.execute(q).all()]
    more = len(rows) > limit
    rows = rows[:limit]
    return Page(rows, encode_cursor(rows[-1][0].pk) if more and rows else None)


def get_finding(session: Session, pk: int, *, scope: Scope) -> tuple[FindingRow, IncidentRow]:
    q = (
        select(FindingRow, IncidentRow)
        .join(IncidentRow, FindingRow.incident_pk == IncidentRow.pk)
        .where(FindingRow.pk == pk, *finding_clauses(scope))
    )
    row = session.execute(q).one_or_none()
    if row is None:
        raise NotFoundError(f"no finding {pk}", field="pk", value=pk, fix="list findings to find its pk")
    return row[0], row[1]


def daily_statistics(
    session: Session, agreement_id: str, start: dt.date, end: dt.date, *, scope: Scope
) -> list[dict[str, Any]]:
    """Per day: incidents by kind and sector; findings by rule, responsible party and status.

    Reports outside the area of application (``in_area`` false) and on days the agreement was not
    in force (``in_force`` false) are counted apart (``outside_area``, ``not_in_force``), not in
    ``incidents`` and its breakdowns: no rule judged them; so are reports their source withdrew
    (``withdrawn``: ACLED's deletions applied; they hold no findings). Counts only, never
    positions. A liaison's findings counts include released findings only.
    """
    if end < start:
        raise ValidationError(
            "end is before start", field="end", value=end.isoformat(), fix="give end >= start"
        )
    if (end - start).days > 366:
        raise ValidationError(
            "at most 367 days per request", field="end", value=end.isoformat(), fix="ask year by year"
        )
    days: dict[dt.date, dict[str, Any]] = {}

    def day(d: dt.date) -> dict[str, Any]:
        return days.setdefault(
            d,
            {
                "day": d,
                "incidents": 0,
                "outside_area": 0,
                "not_in_force": 0,
                "withdrawn": 0,
                "incidents_by_kind": defaultdict(int),
                "incidents_by_sector": defaultdict(int),
                "events": 0,
                "events_expected": 0.0,
                "explosion_events": 0,
                "explosions": 0,
                "findings": 0,
                "violations": 0,
                "findings_by_rule": defaultdict(int),
                "violations_by_party": defaultdict(int),
                "findings_by_status": defaultdict(int),
            },
        )

    base = [IncidentRow.agreement_id == agreement_id, IncidentRow.day >= start, IncidentRow.day <= end]
    live = live_incident_clauses()  # withdrawn reports are not counted (they hold no findings)
    cols = (
        IncidentRow.day,
        IncidentRow.kind,
        IncidentRow.sector,
        IncidentRow.in_area,
        IncidentRow.in_force,
    )
    q = select(*cols, func.count()).where(*base, *live, *counted_incident_clauses(scope)).group_by(*cols)
    for d, kind, sector, in_area, in_force, n in session.execute(q):
        rec = day(d)
        if in_area is False or in_force is False:  # NULL (unlabelled, stored before 0009): counted
            rec["outside_area"] += n if in_area is False else 0
            rec["not_in_force"] += n if in_force is False else 0
            continue
        rec["incidents"] += n
        rec["incidents_by_kind"][kind] += n
        rec["incidents_by_sector"][sector or "none"] += n
    gone = (
        select(IncidentRow.day, func.count())
        .where(*base, IncidentRow.withdrawn_at.is_not(None), *counted_incident_clauses(scope))
        .group_by(IncidentRow.day)
    )
    for d, n in session.execute(gone):
        day(d)["withdrawn"] += int(n)
    # Events, not reports: the reports fusion (or an analyst) put in one event count once, and an
    # event's explosions are the most any of its reports says ("12 explosions"), not its reports.
    judged = [
        *base, *live, *counted_incident_clauses(scope),
        IncidentRow.in_area.isnot(False), IncidentRow.in_force.isnot(False),
    ]  # fmt: skip
    counted = day_event_counts(session, judged)
    for d, (n_ev, n_boom_ev, n_boom) in counted.items():
        rec = day(d)
        rec["events"] += n_ev
        rec["explosion_events"] += n_boom_ev
        rec["explosions"] += n_boom
    # and the distinct events expected among them, from the possible duplicates' probabilities
    by_day = {d: c[0] for d, c in counted.items()}
    for d, x in day_expected_events(session, judged, by_day).items():
        day(d)["events_expected"] = round(x, 2)
    violation = func.sum(case((FindingRow.probability >= VIOLATION_P, 1), else_=0))
    fq = (
        select(
            IncidentRow.day,
            FindingRow.rule_id,
            FindingRow.responsible,
            FindingRow.status,
            func.count(),
            violation,
        )
        .join(IncidentRow, FindingRow.incident_pk == IncidentRow.pk)
        .where(*base, *finding_clauses(scope))
        .group_by(IncidentRow.day, FindingRow.rule_id, FindingRow.responsible, FindingRow.status)
    )
    for d, rule, party, status, n, nv in session.execute(fq):
        rec = day(d)
        rec["findings"] += n
        rec["findings_by_rule"][rule] += n
        rec["findings_by_status"][status] += n
        if nv:
            rec["violations"] += int(nv)
            rec["violations_by_party"][party] += int(nv)
    out = []
    for d in sorted(days):
        rec = days[d]
        out.append({k: dict(v) if isinstance(v, defaultdict) else v for k, v in rec.items()})
    return out
