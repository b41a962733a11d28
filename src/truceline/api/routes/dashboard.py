"""What the dashboard page reads: the agreement's map layers, the filtered findings and incidents
(column-wise), the review queue, and the daily report as PDF.

The map's routes (legend, layers, features, timeline) serve every role with a map, the public
(signed out) included: each gets what its scope allows (the public and the parties' liaisons: the
released findings and the agreement's layers without the observation posts; no raw report).

The filter parameters are those of ``GET /incidents`` and ``GET /findings`` (dates, kind, rule,
party, sector, status, source type), each repeatable or comma-separated; ``GET /export`` takes the
same ones (:func:`map_filter`), so an export holds exactly what the dashboard shows.
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
from dataclasses import replace
from functools import lru_cache
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from sqlalchemy.orm import Session

from truceline.api.deps import AgreementQ, Ctx, ReleasedOnlyQ, allow
from truceline.api.routes import ERRORS
from truceline.context import AppContext
from truceline.errors import NotFoundError, ValidationError
from truceline.services import selection
from truceline.services.agreement import agreement_layers, agreement_legend, layers_for
from truceline.services.auth import Permission, Principal
from truceline.services.patrols import MAX_TRACK_POINTS, tracks_layer
from truceline.services.publication import draft_report, get_published
from truceline.services.queries import BBox
from truceline.services.review import review_queue
from truceline.store.models import AgreementRow

__all__ = ["map_filter", "router"]

router = APIRouter(tags=["dashboard"], responses=ERRORS)
Multi = Annotated[
    list[str] | None,
    Query(max_length=50, description="Repeat the parameter, or separate values with commas"),
]
PDF: dict[int | str, dict[str, Any]] = {
    200: {"content": {"application/pdf": {}}, "description": "The report as PDF (A4)"}
}


def _multi(values: list[str] | None) -> tuple[str, ...]:
    out: list[str] = []
    for v in values or ():
        out.extend(p.strip() for p in v.split(",") if p.strip())
    return tuple(dict.fromkeys(x[:64] for x in out))


def map_filter(
    start: Annotated[dt.date | None, Query(description="First day (incident day, UTC)")] = None,
    end: Annotated[dt.date | None, Query(description="Last day (inclusive)")] = None,
    kind: Multi = None,
    rule: Multi = None,
    party: Multi = None,
    sector: Multi = None,
    status: Annotated[
        list[str] | None,
        Query(
            max_length=10, description="new, verified, rejected, sent_back (repeat or comma-separate)"
        ),
    ] = None,
    source_type: Multi = None,
    incidents: Annotated[
        bool, Query(description="Include the incidents without findings (not for liaisons)")
    ] = True,
    in_force: Annotated[
        bool | None, Query(description="Only reports on days the agreement was (not) in force")
    ] = None,
    in_area: Annotated[
        bool | None, Query(description="Only reports inside (outside) the area of application")
    ] = None,
    bbox: Annotated[
        str | None,
        Query(max_length=200, description="west,south,east,north (WGS84 deg): only what lies in it"),
    ] = None,
) -> selection.Selection:
    """The dashboard filter from query parameters (the agreement is filled in by the route)."""
    return selection.Selection(
        agreement_id="",
        start=start,
        end=end,
        kinds=_multi(kind),
        rules=_multi(rule),
        parties=_multi(party),
        sectors=_multi(sector),
        statuses=_multi(status),
        source_types=_multi(source_type),
        incidents=incidents,
        in_force=in_force,
        in_area=in_area,
        bbox=BBox.parse(bbox) if bbox else None,
    )


Filter = Annotated[selection.Selection, Depends(map_filter)]


def for_agreement(
    flt: selection.Selection,
    ctx: AppContext,
    session: Session,
    agreement: str | None,
    who: Principal,
) -> selection.Selection:
    """The filter bound to the agreement asked for (or the only one) and checked for the caller."""
    ag_id = ctx.agreements.default_id(session, agreement)
    if session.get(AgreementRow, ag_id) is None:
        raise NotFoundError(
            f"no agreement {ag_id!r}",
            field="agreement",
            value=ag_id,
            fix="list them: GET /api/v1/agreements",
        )
    return replace(flt, agreement_id=ag_id).checked(who.scope)


#: A tagged map answer: the browser keeps it and asks again with its tag (``If-None-Match``); the
#: server answers 304 while the map's summary is unchanged. Private: answers depend on the role.
REVALIDATE = "private, no-cache"


def json_response(request: Request, data: Any, *, etag: str | None = None) -> Response:
    """JSON, gzip-compressed when the client accepts it and the body is large (map data is);
    with ``etag``, kept by the browser and revalidated (see :func:`not_modified`)."""
    body = json.dumps(data, separators=(",", ":"), allow_nan=False).encode()
    headers = (
        {"Cache-Control": "no-store"} if etag is None else {"Cache-Control": REVALIDATE, "ETag": etag}
    )
    if len(body) > 32_768 and "gzip" in request.headers.get("accept-encoding", ""):
        body = gzip.compress(body, compresslevel=1)
        headers["Content-Encoding"] = "gzip"
        headers["Vary"] = "Accept-Encoding"
    return Response(body, media_type="application/json", headers=headers)


def not_modified(request: Request, etag: str | None) -> Response | None:
    """304 when the browser already holds the answer tagged ``etag``, else ``None``."""
    if etag is None or etag not in request.headers.get("if-none-match", ""):
        return None
    return Response(status_code=304, headers={"Cache-Control": REVALIDATE, "ETag": etag})


@router.get(
    "/dashboard/legend",
    summary="What labels the map and the filters on a day: parties, rules in force, weapon "
    "classes, sectors, kinds, source types, statuses, the line's bounds",
)
def legend(
    ctx: Ctx,
    _: Annotated[Principal, Depends(allow(Permission.map_read))],
    date: Annotated[dt.date | None, Query(description="Day (default: the agreement's start)")] = None,
    agreement: AgreementQ = None,
) -> dict[str, Any]:
    with ctx.db.read() as s:
        ag = ctx.agreement(s, agreement)
    return agreement_legend(ag, date or ag.effective_from)


@router.get(
    "/dashboard/layers",
    summary="The agreement's map layers on a day: line, zones, withdrawal lines, sectors, "
    "observation posts (these only for roles that read incidents)",
    response_description="A GeoJSON FeatureCollection (WGS84 lon/lat)",
)
def layers(
    request: Request,
    ctx: Ctx,
    who: Annotated[Principal, Depends(allow(Permission.map_read))],
    date: Annotated[dt.date | None, Query(description="Day (default: the agreement's start)")] = None,
    agreement: AgreementQ = None,
    zoom: Annotated[
        int | None,
        Query(
            ge=0,
            le=24,
            description="The web map's zoom the layers are drawn at: lines and outlines simplified "
            "to half a pixel there (default: full detail)",
        ),
    ] = None,
) -> Response:
    with ctx.db.read() as s:
        ag = ctx.agreement(s, agreement)
    fc = layers_for(agreement_layers(ag, date or ag.effective_from, zoom=zoom), who)
    return json_response(request, fc)


@router.get(
    "/dashboard/features",
    summary="Findings and incidents without findings matching the filter, column-wise, with the "
    "timeline of findings per day",
    response_description="`findings` and `incidents` as columns (categorical ones coded, see "
    "`codes`), `histogram`, `truncated`",
)
def features(
    request: Request,
    flt: Filter,
    ctx: Ctx,
    who: Annotated[Principal, Depends(allow(Permission.map_read))],
    agreement: AgreementQ = None,
    limit: Annotated[
        int,
        Query(ge=1, le=selection.MAX_POINTS, description="Most rows (then `truncated` is true)"),
    ] = selection.MAX_POINTS,
) -> Response:
    with ctx.db.read() as s:
        f = for_agreement(flt, ctx, s, agreement, who)
    if not who.can(Permission.incidents_read):
        f = replace(f, incidents=False)
    selection.refresh_map_cells(ctx.db, f.agreement_id)  # the histogram reads the summary
    with ctx.db.read() as s:
        data = selection.feature_columns(s, f, scope=who.scope, limit=limit)
    return json_response(request, data)


@router.get(
    "/dashboard/clusters",
    summary="The filtered findings and incidents counted per grid cell at a zoom (a year's overview), "
    "by party, rule and kind; computed by the database",
    response_description="Cells as columns (`lon`, `lat`, `findings`, `incidents`, `gx`, `gy`) and "
    "`by_party`, `by_rule`, `by_kind` (a count column per value)",
)
def clusters(
    request: Request,
    flt: Filter,
    ctx: Ctx,
    who: Annotated[Principal, Depends(allow(Permission.map_read))],
    zoom: Annotated[int, Query(ge=0, le=20, description="The map's zoom (cells of 64 px)")],
    agreement: AgreementQ = None,
) -> Response:
    with ctx.db.read() as s:
        f = for_agreement(flt, ctx, s, agreement, who)
    if not who.can(Permission.incidents_read):
        f = replace(f, incidents=False)
    selection.refresh_map_cells(ctx.db, f.agreement_id)  # the days written since, if any
    with ctx.db.read() as s:
        tag = selection.answer_tag(s, f, who.scope, zoom=zoom)
        unchanged = not_modified(request, tag)
        if unchanged is not None:
            return unchanged
        data = selection.clusters(s, f, scope=who.scope, zoom=zoom)
    return json_response(request, data, etag=tag)


@router.get(
    "/dashboard/timeline",
    summary="Findings and incidents without findings per day, and findings per day of each rule "
    "(`by_rule`), every filter but the dates applied",
)
def timeline(
    request: Request,
    flt: Filter,
    ctx: Ctx,
    who: Annotated[Principal, Depends(allow(Permission.map_read))],
    agreement: AgreementQ = None,
) -> Response:
    with ctx.db.read() as s:
        f = for_agreement(flt, ctx, s, agreement, who)
    if not who.can(Permission.incidents_read):
        f = replace(f, incidents=False)
    selection.refresh_map_cells(ctx.db, f.agreement_id)
    with ctx.db.read() as s:
        tag = selection.answer_tag(s, f, who.scope)
        unchanged = not_modified(request, tag)
        if unchanged is not None:
            return unchanged
        data = selection.timeline(s, f, scope=who.scope)
    return json_response(request, data, etag=tag)


@router.get(
    "/dashboard/patrols",
    summary="The patrols' tracks on the selected days (TAK position reports): one line per device; "
    "for the mission only (a monitor: the devices of their own token)",
    response_description="A GeoJSON FeatureCollection (WGS84 lon/lat) and `truncated`",
)
def patrols(
    request: Request,
    ctx: Ctx,
    who: Annotated[Principal, Depends(allow(Permission.incidents_read))],
    start: Annotated[dt.date, Query(description="First day (UTC)")],
    end: Annotated[dt.date | None, Query(description="Last day (inclusive; default: start)")] = None,
    agreement: AgreementQ = None,
    limit: Annotated[int, Query(ge=1, le=MAX_TRACK_POINTS)] = MAX_TRACK_POINTS,
) -> Response:
    last = end or start
    if last < start:
        raise ValidationError(
            "end is before start", field="end", value=last.isoformat(), fix="give end >= start"
        )
    t0 = dt.datetime.combine(start, dt.time(), tzinfo=dt.UTC)
    t1 = dt.datetime.combine(last, dt.time.max, tzinfo=dt.UTC)
    with ctx.db.read() as s:
        ag_id = ctx.agreements.default_id(s, agreement)
        fc = tracks_layer(s, ag_id, t0, t1, scope=who.scope, limit=limit)
    return json_response(request, fc)


@router.get(
    "/dashboard/queue",
    summary="Incidents awaiting review: most serious first, then oldest first",
)
def queue(
    ctx: Ctx,
    who: Annotated[Principal, Depends(allow(Permission.incidents_review))],
    agreement: AgreementQ = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> dict[str, Any]:
    with ctx.db.read() as s:
        return review_queue(s, ctx.agreements.default_id(s, agreement), scope=who.scope, limit=limit)


def _pdf(pdf: bytes, name: str, sha: str | None = None) -> Response:
    headers = {"Content-Disposition": f'attachment; filename="{name}"', "Cache-Control": "no-store"}
    if sha:
        headers["X-Content-SHA256"] = sha  # of the published HTML the PDF was typeset from
    return Response(pdf, media_type="application/pdf", headers=headers)


@lru_cache(maxsize=8)
def _published_pdf(sha256: str, html: str, published_at: dt.datetime) -> bytes:
    """A published report's PDF: its HTML never changes, so each is typeset once per process."""
    from truceline.report.pdf import html_to_pdf

    return html_to_pdf(html, created=published_at)


@router.get(
    "/reports/{day}/pdf",
    response_class=Response,
    responses=PDF,
    summary="The published report of a day as PDF (404 until it is published)",
)
def published_pdf(
    day: dt.date,
    ctx: Ctx,
    _: Annotated[Principal, Depends(allow(Permission.reports_published))],
    agreement: AgreementQ = None,
) -> Response:
    with ctx.db.read() as s:
        ag_id = ctx.agreements.default_id(s, agreement)
        row = get_published(s, ag_id, day)
        html, sha, at = row.html, row.sha256, row.published_at
    return _pdf(_published_pdf(sha, html, at), f"report-{ag_id}-{day}.pdf", sha)


@router.get(
    "/reports/{day}/draft/pdf",
    response_class=Response,
    responses=PDF,
    summary="The day's report as it stands now, as PDF (not published)",
)
def draft_pdf(
    day: dt.date,
    ctx: Ctx,
    _: Annotated[Principal, Depends(allow(Permission.reports_draft))],
    agreement: AgreementQ = None,
    released_only: ReleasedOnlyQ = False,
) -> Response:
    with ctx.db.read() as s:
        ag = ctx.agreement(s, agreement)
        html = draft_report(s, ag, day, released_only=released_only)
    from truceline.report.pdf import html_to_pdf

    return _pdf(html_to_pdf(html), f"report-{ag.id}-{day}-draft.pdf")
