"""What the mission dashboard shows: map layers, the filtered findings and incidents, their timeline,
the review queue, and exports of exactly the filtered set.

One filter (:class:`MapFilter`) drives the map, the counts, the timeline and the exports: the map
and an export call the same query builders (:func:`_finding_select`, :func:`_incident_select`), so
what is downloaded is what is on the screen, row for row.

What the filter means
---------------------
- Two sets are shown: *findings* (each with its incident's facts) and *incidents without any
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
clauses the list endpoints use (:mod:`truceline.services.queries`), so a liaison's dashboard holds
the released findings only, and none of the raw reports' own fields.

Arrays are returned column-wise with categorical columns coded as small integers (``codes`` holds
the values), which keeps 100,000 points to a few megabytes of JSON and lets the browser filter,
cluster and draw them without reshaping.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import shapely
from sqlalchemy import (
    BigInteger,
    ColumnElement,
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

from truceline.core.agreement import Agreement, RuleType
from truceline.core.geodesy import offset_region
from truceline.core.incidents import Kind, SourceType
from truceline.core.probability import icd203_term
from truceline.core.rules import NUMBER_COLUMNS, number_columns
from truceline.errors import ValidationError
from truceline.services.agreement import zones_feature_collection
from truceline.services.auth import Scope
from truceline.services.queries import _finding_scope, _incident_scope
from truceline.store.models import FindingRow, IncidentRow

__all__ = [
    "EXPORT_COLUMNS",
    "STATUSES",
    "MapFilter",
    "export_csv",
    "export_geojson",
    "map_features",
    "map_layers",
    "map_legend",
    "review_queue",
]

#: Review statuses a filter may name (``new``: not reviewed yet).
STATUSES = ("new", "verified", "rejected", "sent_back")
_FINDING_STATUS = {"new": "open"}  # a finding not reviewed yet is "open"; an incident is "new"
#: Most rows one map request returns; beyond it the answer says ``truncated`` (narrow the filter).
MAX_POINTS = 300_000
#: Findings at or above this probability count as violations (as in the daily report).
VIOLATION_P = 0.5
#: Rule types whose likely violations are reviewed first.
SERIOUS_RULE_TYPES = (RuleType.fire_across.value, RuleType.withdrawal.value)
SERIOUS_P = 0.8


@dataclass(frozen=True, slots=True)
class MapFilter:
    """The dashboard's filter (see the module docstring for what each field selects)."""

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

    def checked(self, scope: Scope) -> MapFilter:
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


def _common(flt: MapFilter) -> list[ColumnElement[bool]]:
    conds: list[ColumnElement[bool]] = [IncidentRow.agreement_id == flt.agreement_id]
    if flt.kinds:
        conds.append(IncidentRow.kind.in_(flt.kinds))
    if flt.sectors:
        conds.append(IncidentRow.sector.in_(flt.sectors))
    if flt.source_types:
        conds.append(IncidentRow.source_type.in_(flt.source_types))
    for flag, want in ((IncidentRow.in_force, flt.in_force), (IncidentRow.in_area, flt.in_area)):
        if want is not None:
            conds.append(flag.is_(true()) if want else flag.is_(false()))
    return conds


def _days(flt: MapFilter) -> list[ColumnElement[bool]]:
    conds: list[ColumnElement[bool]] = []
    if flt.start is not None:
        conds.append(IncidentRow.day >= flt.start)
    if flt.end is not None:
        conds.append(IncidentRow.day <= flt.end)
    return conds


def _finding_conds(flt: MapFilter, scope: Scope, *, dated: bool = True) -> list[ColumnElement[bool]]:
    conds = _common(flt) + (_days(flt) if dated else []) + _finding_scope(scope)
    if flt.rules:
        conds.append(FindingRow.rule_id.in_(flt.rules))
    if flt.parties:
        conds.append(FindingRow.responsible.in_(flt.parties))
    if flt.statuses:
        conds.append(FindingRow.status.in_([_FINDING_STATUS.get(s, s) for s in flt.statuses]))
    return conds


def _incident_conds(
    flt: MapFilter, scope: Scope, *, dated: bool = True
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
    sc = _incident_scope(scope)
    if sc is not None:
        conds.append(sc)
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


def _finding_select(flt: MapFilter, scope: Scope, cols: Sequence[Any] = _F_COLS) -> Select[Any]:
    return (
        select(*cols)
        .select_from(FindingRow)
        .join(IncidentRow, FindingRow.incident_pk == IncidentRow.pk)
        .where(*_finding_conds(flt, scope))
        .order_by(FindingRow.pk)
    )


def _incident_select(flt: MapFilter, scope: Scope, cols: Sequence[Any] = _I_COLS) -> Select[Any] | None:
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


def map_features(
    session: Session, flt: MapFilter, *, scope: Scope, limit: int = MAX_POINTS
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


def timeline(session: Session, flt: MapFilter, *, scope: Scope) -> dict[str, list[Any]]:
    """Findings and incidents without findings per day, every filter but the dates applied.

    Days run without gaps from the first to the last day with data (at most 1,000 days back from
    the last).
    """
    fq = (
        select(IncidentRow.day, func.count())
        .select_from(FindingRow)
        .join(IncidentRow, FindingRow.incident_pk == IncidentRow.pk)
        .where(*_finding_conds(flt, scope, dated=False))
        .group_by(IncidentRow.day)
    )
    per_f = {d: int(n) for d, n in session.execute(fq)}
    per_i: dict[dt.date, int] = {}
    iconds = _incident_conds(flt, scope, dated=False)
    if iconds is not None:
        iq = select(IncidentRow.day, func.count()).where(*iconds).group_by(IncidentRow.day)
        per_i = {d: int(n) for d, n in session.execute(iq)}
    seen = set(per_f) | set(per_i)
    if not seen:
        return {"days": [], "findings": [], "incidents": []}
    last = max(seen)
    first = min(seen)
    if (last - first).days > 999:
        first = last - dt.timedelta(days=999)
    days = [first + dt.timedelta(days=k) for k in range((last - first).days + 1)]
    return {
        "days": [d.isoformat() for d in days],
        "findings": [per_f.get(d, 0) for d in days],
        "incidents": [per_i.get(d, 0) for d in days],
    }


# -- the review queue -------------------------------------------------------------------------


def review_queue(
    session: Session, agreement_id: str, *, scope: Scope, limit: int = 100
) -> dict[str, Any]:
    """Incidents awaiting review, most serious first and, within a tier, oldest first.

    Tiers: 1 a likely (P >= 0.8) fire-across or withdrawal violation, or a civilian casualty;
    2 another finding with P >= 0.5; 3 findings below that; 4 a report without findings. Age is the
    time since the report was received (then since it was observed).
    """
    F, inc = FindingRow, IncidentRow
    serious = case((and_(F.probability >= SERIOUS_P, F.rule_type.in_(SERIOUS_RULE_TYPES)), 1), else_=0)
    agg = (
        select(
            F.incident_pk.label("ipk"),
            func.max(serious).label("serious"),
            func.max(F.probability).label("max_p"),
            func.count().label("n"),
        )
        .group_by(F.incident_pk)
        .subquery()
    )
    tier = case(
        (or_(agg.c.serious == 1, inc.kind == Kind.civilian_casualty.value), 1),
        (agg.c.max_p >= VIOLATION_P, 2),
        (agg.c.n > 0, 3),
        else_=4,
    ).label("tier")
    conds: list[ColumnElement[bool]] = [inc.agreement_id == agreement_id, inc.status == "new"]
    sc = _incident_scope(scope)
    if sc is not None:
        conds.append(sc)
    base = select(inc.pk, tier).outerjoin(agg, agg.c.ipk == inc.pk).where(*conds).subquery()
    tiers = {
        int(t): int(n)
        for t, n in session.execute(select(base.c.tier, func.count()).group_by(base.c.tier))
    }
    q = (
        select(inc, tier, agg.c.max_p, agg.c.n)
        .outerjoin(agg, agg.c.ipk == inc.pk)
        .where(*conds)
        .order_by(tier, inc.received_at, inc.observed_at, inc.pk)
        .limit(limit)
    )
    rows = session.execute(q).all()
    pks = [r[0].pk for r in rows]
    top: dict[int, FindingRow] = {}
    if pks:
        for f in session.execute(
            select(F).where(F.incident_pk.in_(pks)).order_by(F.incident_pk, F.probability.desc(), F.pk)
        ).scalars():
            top.setdefault(f.incident_pk, f)
    items = []
    for i, t, max_p, n in rows:
        f = top.get(i.pk)
        items.append(
            {
                "pk": i.pk,
                "report_id": i.report_id,
                "observed_at": _iso(i.observed_at),
                "received_at": _iso(i.received_at),
                "kind": i.kind,
                "weapon_class": i.weapon_class,
                "sector": i.sector,
                "source_type": i.source_type,
                "tier": int(t),
                "n_findings": int(n or 0),
                "max_probability": None if max_p is None else float(max_p),
                "top_rule": f.rule_id if f else None,
                "top_responsible": f.responsible if f else None,
                "likelihood": str(icd203_term(max_p)) if max_p is not None else None,
            }
        )
    return {"total": sum(tiers.values()), "by_tier": tiers, "items": items}


def _iso(t: dt.datetime | None) -> str | None:
    if t is None:
        return None
    return (t if t.tzinfo else t.replace(tzinfo=dt.UTC)).astimezone(dt.UTC).isoformat()


# -- exports ----------------------------------------------------------------------------------

#: Columns of the CSV export (and properties of the GeoJSON export), one row per finding, then one
#: per incident without findings (finding columns empty). Liaisons get the raw report's own fields
#: (finding's incident_pk, report_id, source_type, narrative) empty. The finding's numbers follow
#: its explanation (``finding_distance_km``, ``finding_limit_km``, ...: NUMBER_COLUMNS).
EXPORT_COLUMNS = (
    "record",
    "finding_pk",
    "incident_pk",
    "report_id",
    "observed_at",
    "day",
    "lon",
    "lat",
    "uncertainty_m",
    "kind",
    "weapon_class",
    "sector",
    "source_type",
    "side_party",
    "distance_km",
    "rule_id",
    "rule_type",
    "responsible",
    "probability",
    "likelihood",
    "status",
    "released",
    "explanation",
    *NUMBER_COLUMNS,
    "party",
    "narrative",
)


def export_rows(session: Session, flt: MapFilter, *, scope: Scope) -> Iterator[dict[str, Any]]:
    """The filtered set as flat records (:data:`EXPORT_COLUMNS`), findings first, in pk order."""
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
            "observed_at": _iso(t),
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
            "observed_at": _iso(t),
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


def export_csv(rows: Iterator[dict[str, Any]]) -> Iterator[str]:
    """CSV text in chunks (header first); empty cells for missing values."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=EXPORT_COLUMNS, lineterminator="\n")
    w.writeheader()
    for k, row in enumerate(rows, 1):
        w.writerow({c: ("" if v is None else v) for c, v in row.items()})
        if k % 2000 == 0:
            yield buf.getvalue()
            buf.seek(0)
            buf.truncate()
    yield buf.getvalue()


def export_geojson(rows: Iterator[dict[str, Any]], *, name: str) -> Iterator[str]:
    """A GeoJSON FeatureCollection (WGS84 lon/lat) in chunks, one Point feature per record."""
    yield '{"type":"FeatureCollection","name":' + json.dumps(name) + ',"features":['
    chunk: list[str] = []
    for k, row in enumerate(rows):
        props = {c: v for c, v in row.items() if c not in ("lon", "lat")}
        feat = {
            "type": "Feature",
            "id": f"{row['record']}-{row['finding_pk'] or row['incident_pk']}",
            "geometry": {"type": "Point", "coordinates": [row["lon"], row["lat"]]},
            "properties": props,
        }
        chunk.append(("," if k else "") + json.dumps(feat, separators=(",", ":")))
        if len(chunk) >= 2000:
            yield "".join(chunk)
            chunk.clear()
    yield "".join(chunk) + "]}"


# -- the agreement's layers -------------------------------------------------------------------


def map_legend(ag: Agreement, day: dt.date) -> dict[str, Any]:
    """What the page needs to label the map and offer filters (no geometry; cheap).

    The agreement, its parties and sides, the rules in force on ``day`` (with their weapon classes),
    the weapon classes, sectors, kinds, source types and statuses, and ``bbox`` (the line's
    bounds, west, south, east, north) for the first view.
    """
    cv = ag.version_at(day)
    weapons = {w.id: w.name or w.id for w in ag.weapon_classes}
    return {
        "agreement": {"id": ag.id, "name": ag.name},
        "day": day.isoformat(),
        "version_from": cv.version.effective_from.isoformat(),
        "bbox": [round(float(v), 5) for v in shapely.bounds(cv.version.line)],
        "parties": [{"id": p.id, "name": p.name} for p in ag.parties],
        "left": ag.left,
        "right": ag.right,
        "rules": [
            {
                "id": r.id,
                "type": r.type.value,
                "description": r.description,
                "in_force": r.in_force(day),
                "weapon_classes": [weapons.get(w, w) for w in r.weapon_classes],
            }
            for r in cv.rules
        ],
        "weapon_classes": [{"id": k, "name": v} for k, v in weapons.items()],
        "sectors": [{"id": s.id, "name": s.name, "nation": s.nation} for s in ag.sectors],
        "kinds": [k.value for k in Kind],
        "sources": [t.value for t in SourceType],
        "statuses": list(STATUSES),
    }


def map_layers(ag: Agreement, day: dt.date) -> dict[str, Any]:
    """The agreement's layers in force on ``day`` as one GeoJSON FeatureCollection.

    Features (``properties.layer``): ``line``, ``zone`` (per side), ``withdrawal`` (the line at each
    withdrawal distance in force, per side, with the weapon classes it applies to), ``sector``,
    ``observation_post``. The outlines are built geodesically, which takes seconds for a long line,
    so they are cached on the compiled version (per day: rules start on dates).
    """
    cv = ag.version_at(day)
    cache: dict[str, dict[str, Any]] = cv.__dict__.setdefault("_dashboard_layers", {})
    in_force = tuple(r.id for r in cv.rules if r.type == RuleType.withdrawal and r.in_force(day))
    key = ",".join(in_force)  # the geometry changes only when the withdrawal rules in force do
    if key not in cache:
        fc = zones_feature_collection(ag, day)
        fc["features"][1:1] = _withdrawal_lines(ag, day)
        if len(cache) > 16:
            cache.clear()
        cache[key] = fc
    return cache[key]


def _withdrawal_lines(ag: Agreement, day: dt.date) -> list[dict[str, Any]]:
    """One line per side and withdrawal distance in force: the withdrawn weapons stay behind it."""
    cv = ag.version_at(day)
    weapons = {w.id: w.name or w.id for w in ag.weapon_classes}
    groups: dict[tuple[str, float], list[Any]] = {}
    for r in cv.rules:
        if r.type != RuleType.withdrawal or not r.in_force(day):
            continue
        for party, km in r.distance_km.items():
            groups.setdefault((party, float(km)), []).append(r)
    out = []
    for (party, km), rules in sorted(groups.items()):
        side = ag.side_of_party(party)
        # Every vertex lies exactly ``km`` from the line; arcs at bends within 5 m (a map line).
        region = shapely.intersection(
            offset_region(cv.ref_line(side), km * 1000.0, side, tol_m=5.0), cv.side_polygon(side)
        )
        edge = _at_distance(shapely.boundary(region), cv.ref_line(side), km * 1000.0)
        if edge.is_empty:
            continue
        names = sorted({weapons.get(w, w) for r in rules for w in r.weapon_classes})
        out.append(
            {
                "type": "Feature",
                "properties": {
                    "layer": "withdrawal",
                    "id": f"withdrawal:{party}:{km:g}",
                    "side": party,
                    "distance_km": km,
                    "rules": [r.id for r in rules],
                    "weapon_classes": names,
                    "name": f"Withdrawal line {km:g} km ({party})",
                },
                "geometry": shapely.geometry.mapping(edge),
            }
        )
    return out


def _at_distance(outline: Any, ref: Any, dist_m: float, tol_m: float = 25.0) -> Any:
    """The stretches of a zone's outline that lie ``dist_m`` from the line (measured exactly).

    The outline of "within ``dist_m`` on one side" also runs along the line itself, along the area
    of application's edge and along the line's extension past its ends; only its vertices at the
    distance (every vertex of the offset is, to the centimetre) make the withdrawal line.
    """
    runs = []
    for part in shapely.get_parts(shapely.line_merge(outline)):
        xy = shapely.get_coordinates(part)
        if len(xy) < 2:
            continue
        ok = np.abs(ref.nearest(xy[:, 0], xy[:, 1]).distance_m - dist_m) < tol_m
        edges = np.flatnonzero(np.diff(np.concatenate([[0], ok.astype(np.int8), [0]])))
        for a, b in zip(edges[::2], edges[1::2], strict=True):
            if b - a >= 2:
                runs.append(np.round(xy[a:b], 7))
    return shapely.MultiLineString(runs) if runs else shapely.MultiLineString()
