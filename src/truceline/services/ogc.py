"""OGC API - Features (Part 1: Core, GeoJSON, OpenAPI 3.0) over Truceline's layers.

Framework-free: each function takes a session, the agreement, the caller and the parsed
parameters, and returns the JSON document; :mod:`truceline.api.routes.ogc` is the thin HTTP
adapter. Collections:

========== ===================================================== ===================
id         features                                              permission
========== ===================================================== ===================
incidents  stored reports (the API's filter service and scope)   ``incidents:read``
findings   adjudicated findings at the incident's position;      ``findings:read``
           a liaison sees released findings only, redacted
zones      the zones in force (one feature per zone and side)    ``agreements:read``
line       the line of contact in force                          ``agreements:read``
sectors    the contributing nations' sectors                     ``agreements:read``
sensors    fixed observation posts (monitors' positions)          ``incidents:read``
========== ===================================================== ===================

``datetime`` filters incidents and findings by the time observed; for the agreement's layers
it picks the version in force (at an instant, or at the end of an interval). Paging of
incidents and findings uses the API's keyset cursors, the others an offset; ``numberMatched``
counts every feature of the filter, ``numberReturned`` those on the page.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import shapely
from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

from truceline.core.agreement import Agreement
from truceline.core.incidents import utc_time
from truceline.core.probability import icd203_term
from truceline.core.rules import number_columns
from truceline.core.times import as_utc
from truceline.errors import NotFoundError, ValidationError
from truceline.io.features import zones_feature_collection
from truceline.services import queries
from truceline.services.auth import Permission, Principal, require
from truceline.services.scope import finding_clauses
from truceline.store.models import FindingRow, IncidentRow

__all__ = [
    "COLLECTIONS",
    "CONFORMANCE",
    "QUERYABLES_REL",
    "ItemsQuery",
    "ParameterError",
    "collection",
    "collections",
    "conformance",
    "item",
    "items",
    "landing",
    "landing_html",
    "parse_bbox",
    "parse_datetime",
    "queryables",
]

OGC = "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/"
CONFORMANCE = [OGC + "core", OGC + "geojson", OGC + "oas30"]
CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
GEOJSON = "application/geo+json"
JSON = "application/json"


@dataclass(frozen=True, slots=True)
class _Collection:
    id: str
    title: str
    description: str
    permission: Permission


COLLECTIONS: dict[str, _Collection] = {
    c.id: c
    for c in (
        _Collection(
            "incidents",
            "Incidents",
            "Reports of what was observed, with the server's adjudication "
            "(side, distance, zones, sector)",
            Permission.incidents_read,
        ),
        _Collection(
            "findings",
            "Findings",
            "Possible violations found by the rule engine, at the position of the incident",
            Permission.findings_read,
        ),
        _Collection(
            "zones",
            "Zones",
            "Zones of the agreement in force, one feature per zone and side",
            Permission.agreements_read,
        ),
        _Collection(
            "line", "Line of contact", "The agreement's line in force", Permission.agreements_read
        ),
        _Collection(
            "sectors", "Sectors", "Sectors of the contributing nations", Permission.agreements_read
        ),
        _Collection(
            "sensors", "Sensors", "Fixed observation posts of the mission", Permission.incidents_read
        ),
    )
}
_STATIC_LAYER = {"zones": "zone", "line": "line", "sectors": "sector", "sensors": "observation_post"}


# -- parameters ---------------------------------------------------------------------------------


class ParameterError(ValidationError):
    """A query parameter the standard says to answer with 400 (unknown or malformed)."""

    status_code = 400


def parse_bbox(text: str, crs: str | None = None) -> queries.BBox:
    """``minx,miny,maxx,maxy`` (or the 6-number 3D form) in CRS84 degrees."""
    if crs not in (None, CRS84):
        raise ParameterError(
            f"bbox-crs {crs} is not supported",
            field="bbox-crs",
            value=crs,
            fix=f"omit it or give {CRS84}",
        )
    parts = text.split(",")
    if len(parts) == 6:
        parts = [parts[0], parts[1], parts[3], parts[4]]
    try:
        return queries.BBox.parse(",".join(parts))
    except ValidationError as exc:
        raise ParameterError(exc.message, field="bbox", value=text, fix=exc.fix) from None


def _instant(text: str, *, end: bool) -> dt.datetime:
    fix = "give RFC 3339 times, e.g. 2025-03-01T00:00:00Z, or an interval a/b with .. for an open end"
    try:
        if len(text) == 10:
            day = dt.date.fromisoformat(text)
            t = dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)
        else:
            t = dt.datetime.fromisoformat(text.replace("z", "Z").replace("Z", "+00:00"))
    except ValueError:
        raise ParameterError("datetime is not RFC 3339", field="datetime", value=text, fix=fix) from None
    if t.tzinfo is None:
        raise ParameterError("datetime has no UTC offset", field="datetime", value=text, fix=fix)
    try:  # within the times a report may carry, so the bounds below cannot overflow
        t = utc_time(t, end_inclusive=True)
    except ValueError as exc:
        raise ParameterError(f"datetime {exc}", field="datetime", value=text, fix=fix) from None
    if len(text) == 10:  # a day stands for the whole day
        return t + dt.timedelta(days=1) if end else t
    # Intervals are closed; the store's filters take an exclusive end (microsecond resolution).
    return t + dt.timedelta(microseconds=1) if end else t


def parse_datetime(text: str) -> tuple[dt.datetime | None, dt.datetime | None]:
    """An instant or a closed interval as ``[start, end)`` bounds (``None``: open)."""
    if "/" not in text:
        return _instant(text, end=False), _instant(text, end=True)
    a, b = text.split("/", 1)
    start = None if a in ("", "..") else _instant(a, end=False)
    end = None if b in ("", "..") else _instant(b, end=True)
    if start is not None and end is not None and end <= start:
        raise ParameterError("the interval ends before it starts", field="datetime", value=text)
    return start, end


@dataclass(frozen=True, slots=True)
class ItemsQuery:
    """The parsed query of ``/collections/{id}/items``."""

    limit: int = 100
    bbox: queries.BBox | None = None
    start: dt.datetime | None = None
    end: dt.datetime | None = None
    cursor: str | None = None
    offset: int = 0
    raw_datetime: str | None = None
    raw_bbox: str | None = None


# -- documents ----------------------------------------------------------------------------------


def _link(href: str, rel: str, type_: str = JSON, title: str | None = None) -> dict[str, str]:
    out = {"href": href, "rel": rel, "type": type_}
    if title:
        out["title"] = title
    return out


def _q(params: Mapping[str, Any]) -> str:
    clean = {k: v for k, v in params.items() if v is not None}
    return ("?" + urlencode(clean)) if clean else ""


def landing(base: str, *, api_root: str, extra: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The landing page: links to the API definition, conformance and collections."""
    q = _q(extra or {})
    return {
        "title": "Truceline - OGC API Features",
        "description": "Incidents, findings and the agreement's zones, line, sectors and sensors",
        "links": [
            _link(base + q, "self", JSON, "This document"),
            _link(
                f"{base}/api",
                "service-desc",
                "application/vnd.oai.openapi+json;version=3.0",
                "The API definition (OpenAPI 3.0)",
            ),
            _link(
                base + _q({**(extra or {}), "f": "html"}), "alternate", "text/html", "This page as HTML"
            ),
            _link(f"{api_root}/docs", "service-doc", "text/html", "The API documentation"),
            _link(f"{base}/conformance{q}", "conformance", JSON, "Conformance classes"),
            _link(f"{base}/collections{q}", "data", JSON, "Collections"),
        ],
    }


def landing_html(doc: Mapping[str, Any]) -> str:
    """The landing page as HTML (``?f=html``, or a browser's ``Accept: text/html``)."""
    from html import escape

    items = "".join(
        f'<li><a href="{escape(ln["href"])}">{escape(ln.get("title") or ln["rel"])}</a>'
        f" <small>({escape(ln['rel'])}, {escape(ln['type'])})</small></li>"
        for ln in doc["links"]
    )
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(doc['title'])}</title></head><body>"
        f"<h1>{escape(doc['title'])}</h1><p>{escape(doc['description'])}</p><ul>{items}</ul>"
        "<p>Clients: QGIS (Add WFS / OGC API - Features layer), GDAL "
        "(<code>ogrinfo OAPIF:URL</code>), OWSLib; send the API token as "
        "<code>Authorization: Bearer</code>.</p></body></html>"
    )


def conformance() -> dict[str, Any]:
    return {"conformsTo": CONFORMANCE}


def _extent(ag: Agreement) -> dict[str, Any]:
    w, s, e, n = (float(x) for x in ag.compiled(0).area.bounds)
    return {
        "spatial": {"bbox": [[w, s, e, n]], "crs": CRS84},
        "temporal": {
            "interval": [[f"{ag.effective_from.isoformat()}T00:00:00Z", None]],
            "trs": "http://www.opengis.net/def/uom/ISO-8601/0/Gregorian",
        },
    }


def _collection_doc(c: _Collection, ag: Agreement, base: str, q: str) -> dict[str, Any]:
    href = f"{base}/collections/{c.id}"
    return {
        "id": c.id,
        "title": c.title,
        "description": c.description,
        "itemType": "feature",
        "crs": [CRS84],
        "extent": _extent(ag),
        "links": [
            _link(href + q, "self", JSON, c.title),
            _link(f"{href}/items{q}", "items", GEOJSON, f"{c.title} as GeoJSON"),
            _link(f"{href}/queryables{q}", QUERYABLES_REL, SCHEMA_JSON, "What can be queried"),
        ],
    }


#: The link relation and media type of a collection's queryables (OGC API - Features Part 3).
QUERYABLES_REL = "http://www.opengis.net/def/rel/ogc/1.0/queryables"
SCHEMA_JSON = "application/schema+json"


def queryables(who: Principal, collection_id: str, base: str) -> dict[str, Any]:
    """The collection's queryables as a JSON Schema: what its items can be selected by here, and
    nothing more (``bbox`` on the geometry; ``datetime`` on ``observed_at`` for incidents and
    findings, whose static layers have no time)."""
    c = _get(collection_id, who)
    point = c.id in ("incidents", "findings")
    props: dict[str, Any] = {
        "geometry": {
            "title": "Location (selected with bbox)",
            "format": "geometry-point" if point else "geometry-any",
            "x-ogc-role": "primary-geometry",
        }
    }
    if point:
        props["observed_at"] = {
            "title": "When it was observed, UTC (selected with datetime)",
            "type": "string",
            "format": "date-time",
            "x-ogc-role": "primary-instant",
        }
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"{base}/collections/{c.id}/queryables",
        "type": "object",
        "title": c.title,
        "properties": props,
        "additionalProperties": False,
    }


def _visible(who: Principal) -> list[_Collection]:
    return [c for c in COLLECTIONS.values() if who.can(c.permission)]


def _get(collection_id: str, who: Principal) -> _Collection:
    c = COLLECTIONS.get(collection_id)
    if c is None:
        raise NotFoundError(
            f"no collection {collection_id!r}",
            field="collectionId",
            value=collection_id,
            fix="use one of: " + ", ".join(COLLECTIONS),
        )
    require(who, c.permission)
    return c


def collections(
    ag: Agreement, who: Principal, base: str, extra: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """The collections this caller may read."""
    q = _q(extra or {})
    return {
        "links": [_link(f"{base}/collections{q}", "self", JSON, "Collections")],
        "collections": [_collection_doc(c, ag, base, q) for c in _visible(who)],
    }


def collection(
    ag: Agreement, who: Principal, collection_id: str, base: str, extra: Mapping[str, str] | None = None
) -> dict[str, Any]:
    return _collection_doc(_get(collection_id, who), ag, base, _q(extra or {}))


# -- features -----------------------------------------------------------------------------------


def _iso(t: dt.datetime | None) -> str | None:
    if t is None:
        return None
    return as_utc(t).isoformat().replace("+00:00", "Z")


def _point(lon: float, lat: float) -> dict[str, Any]:
    return {"type": "Point", "coordinates": [lon, lat]}


def _incident_feature(r: IncidentRow) -> dict[str, Any]:
    props = {
        "report_id": r.report_id,
        "observed_at": _iso(r.observed_at),
        "day": r.day.isoformat(),
        "time_precision": r.time_precision,
        "uncertainty_m": r.uncertainty_m,
        "kind": r.kind,
        "weapon_class": r.weapon_class,
        "count": r.count,
        "party": r.party,
        "origin_lon": r.origin_lon,
        "origin_lat": r.origin_lat,
        "bearing_deg": r.bearing_deg,
        "source_type": r.source_type,
        "reliability": r.reliability,
        "credibility": r.credibility,
        "narrative": r.narrative,
        "side_party": r.side_party,
        "distance_km": r.distance_km,
        "p_side": r.p_side,
        "zones": r.zones,
        "sector": r.sector,
        "status": r.status,
    }
    return {"type": "Feature", "id": r.pk, "geometry": _point(r.lon, r.lat), "properties": props}


def _finding_feature(f: FindingRow, i: IncidentRow, *, redact: bool) -> dict[str, Any]:
    props = {
        "rule_id": f.rule_id,
        "rule_type": f.rule_type,
        "responsible": f.responsible,
        "probability": f.probability,
        "likelihood": str(icd203_term(f.probability)),
        "explanation": f.explanation,
        **number_columns(f.numbers),
        "status": f.status,
        "released_at": _iso(f.released_at),
        "observed_at": _iso(i.observed_at),
        "day": i.day.isoformat(),
        "kind": i.kind,
        "weapon_class": i.weapon_class,
        "sector": i.sector,
        "side_party": i.side_party,
        "distance_km": i.distance_km,
        "zones": i.zones,
        # The raw report's own identity stays with the mission (liaisons see the finding only).
        "incident_pk": None if redact else i.pk,
        "report_id": None if redact else i.report_id,
        "source_type": None if redact else i.source_type,
    }
    return {"type": "Feature", "id": f.pk, "geometry": _point(i.lon, i.lat), "properties": props}


def _finding_conditions(
    session: Session, agreement_id: str, who: Principal, q: ItemsQuery
) -> list[ColumnElement[bool]]:
    conds: list[ColumnElement[bool]] = [
        IncidentRow.agreement_id == agreement_id,
        *finding_clauses(who.scope),  # the same row-level rules as GET /findings
    ]
    if q.bbox is not None:
        conds.append(queries._bbox_clause(q.bbox, session.get_bind().dialect.name))
    if q.start is not None:
        conds.append(IncidentRow.observed_at >= q.start)
    if q.end is not None:
        conds.append(IncidentRow.observed_at < q.end)
    return conds


def _version_day(ag: Agreement, q: ItemsQuery, today: dt.date) -> dt.date:
    t = q.end - dt.timedelta(microseconds=1) if q.end is not None else q.start
    day = t.date() if t is not None else today
    return max(day, ag.effective_from)


def _static_features(ag: Agreement, collection_id: str, day: dt.date) -> list[dict[str, Any]]:
    layer = _STATIC_LAYER[collection_id]
    out = []
    for f in zones_feature_collection(ag, day)["features"]:
        p = dict(f["properties"])
        if p.pop("layer") == layer:
            out.append(
                {"type": "Feature", "id": str(p["id"]), "geometry": f["geometry"], "properties": p}
            )
    return out


def _in_bbox(features: list[dict[str, Any]], box: queries.BBox | None) -> list[dict[str, Any]]:
    if box is None or not features:
        return features
    area = shapely.union_all([shapely.box(*p) for p in box.parts()])
    geoms = [shapely.geometry.shape(f["geometry"]) for f in features]
    keep = shapely.intersects(geoms, area)
    return [f for f, k in zip(features, keep, strict=True) if k]


def items(
    session: Session,
    ag: Agreement,
    who: Principal,
    collection_id: str,
    q: ItemsQuery,
    *,
    base: str,
    today: dt.date,
    now: dt.datetime,
    extra: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """A page of features with ``numberMatched``, ``numberReturned`` and ``self``/``next`` links."""
    c = _get(collection_id, who)
    href = f"{base}/collections/{c.id}/items"
    keep = {**(extra or {}), "bbox": q.raw_bbox, "datetime": q.raw_datetime, "limit": q.limit}
    next_params: dict[str, Any] | None = None
    if c.id == "incidents":
        flt = queries.IncidentFilter(agreement_id=ag.id, bbox=q.bbox, start=q.start, end=q.end)
        page = queries.list_incidents(session, flt, scope=who.scope, cursor=q.cursor, limit=q.limit)
        matched = queries.count_incidents(session, flt, scope=who.scope)
        feats = [_incident_feature(r) for r in page.items]
        if page.next_cursor:
            next_params = {**keep, "cursor": page.next_cursor}
    elif c.id == "findings":
        conds = _finding_conditions(session, ag.id, who, q)
        after = queries.decode_cursor(q.cursor)
        rows = session.execute(
            select(FindingRow, IncidentRow)
            .join(IncidentRow, FindingRow.incident_pk == IncidentRow.pk)
            .where(*conds, FindingRow.pk > after)
            .order_by(FindingRow.pk)
            .limit(q.limit + 1)
        ).all()
        matched = int(
            session.execute(
                select(func.count())
                .select_from(FindingRow)
                .join(IncidentRow, FindingRow.incident_pk == IncidentRow.pk)
                .where(*conds)
            ).scalar_one()
        )
        redact = who.scope.released_only
        feats = [_finding_feature(f, i, redact=redact) for f, i in rows[: q.limit]]
        if len(rows) > q.limit:
            next_params = {**keep, "cursor": queries.encode_cursor(rows[q.limit - 1][0].pk)}
    else:
        every = _in_bbox(_static_features(ag, c.id, _version_day(ag, q, today)), q.bbox)
        matched = len(every)
        feats = every[q.offset : q.offset + q.limit]
        if q.offset + q.limit < matched:
            next_params = {**keep, "offset": q.offset + q.limit}
    self_params = {**keep, "cursor": q.cursor, "offset": q.offset or None}
    links = [
        _link(href + _q(self_params), "self", GEOJSON, "This page"),
        _link(f"{base}/collections/{c.id}{_q(extra or {})}", "collection", JSON, c.title),
    ]
    if next_params is not None:
        links.append(_link(href + _q(next_params), "next", GEOJSON, "Next page"))
    return {
        "type": "FeatureCollection",
        "numberMatched": matched,
        "numberReturned": len(feats),
        "timeStamp": _iso(now),
        "links": links,
        "features": [_finite(f) for f in feats],
    }


def _finite(feature: dict[str, Any]) -> dict[str, Any]:
    """JSON has no NaN: absent numbers are null."""
    props = feature["properties"]
    for k, v in props.items():
        if isinstance(v, float) and not math.isfinite(v):
            props[k] = None
    return feature


def item(
    session: Session,
    ag: Agreement,
    who: Principal,
    collection_id: str,
    feature_id: str,
    *,
    base: str,
    today: dt.date,
    extra: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """One feature, or 404 (also when it exists but the caller may not see it)."""
    c = _get(collection_id, who)
    missing = NotFoundError(
        f"no feature {feature_id!r} in {c.id}",
        field="featureId",
        value=feature_id,
        fix="list the items to find its id",
    )
    if c.id in ("incidents", "findings"):
        # isdigit takes "²" (int() refuses it) and "٣" (int() reads 3): ASCII digits only, and
        # few enough of them for int() (it refuses more than 4300)
        ok = len(feature_id) <= 10 and feature_id.isascii() and feature_id.isdigit()
        if not ok or not 0 < int(feature_id) < 2**31:
            raise missing
        pk = int(feature_id)
        if c.id == "incidents":
            row = queries.get_incident(session, pk, scope=who.scope)
            if row.agreement_id != ag.id:
                raise missing
            feat = _incident_feature(row)
        else:
            f, i = queries.get_finding(session, pk, scope=who.scope)
            if i.agreement_id != ag.id:
                raise missing
            feat = _finding_feature(f, i, redact=who.scope.released_only)
    else:
        found = [f for f in _static_features(ag, c.id, today) if f["id"] == feature_id]
        if not found:
            raise missing
        feat = found[0]
    q = _q(extra or {})
    feat["links"] = [
        _link(f"{base}/collections/{c.id}/items/{feature_id}{q}", "self", GEOJSON, "This feature"),
        _link(f"{base}/collections/{c.id}{q}", "collection", JSON, c.title),
    ]
    return _finite(feat)
