"""OGC API - Features under ``/ogc`` (thin: parse, check, call :mod:`truceline.services.ogc`).

Clients: GDAL/QGIS (``OAPIF:http://host:port/ogc``), OWSLib (``Features(url)``). Send the same
bearer token as for the REST API (GDAL: ``--config GDAL_HTTP_HEADERS "Authorization: Bearer ..."``);
without one, a caller is the public and sees no collection.
"""

from __future__ import annotations

from functools import cache
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse

from truceline.api.deps import AgreementQ, Ctx, principal
from truceline.api.oas30 import OAS30, openapi30
from truceline.api.routes import ERRORS
from truceline.services import ogc
from truceline.services.auth import Principal

__all__ = ["OGC_PREFIX", "router"]

OGC_PREFIX = "/ogc"
router = APIRouter(prefix=OGC_PREFIX, tags=["OGC API - Features"], responses=ERRORS)
Who = Annotated[Principal, Depends(principal)]
F = Annotated[str | None, Query(pattern="^(json|geojson)$", description="Output format (JSON only)")]
_ITEM_PARAMS = frozenset({"bbox", "bbox-crs", "datetime", "limit", "cursor", "offset", "f", "agreement"})


class GeoJSONResponse(JSONResponse):
    media_type = ogc.GEOJSON


def _base(request: Request) -> tuple[str, str]:
    root = str(request.base_url).rstrip("/")
    return root + OGC_PREFIX, root + "/api/v1"


def _extra(agreement: str | None) -> dict[str, str]:
    return {"agreement": agreement} if agreement else {}


@router.get(
    "",
    summary="Landing page (JSON, or HTML with f=html or a browser's Accept: text/html)",
    responses={200: {"content": {"application/json": {}, "text/html": {}}}},
)
@router.get("/", include_in_schema=False)
def landing(
    request: Request,
    agreement: AgreementQ = None,
    f: Annotated[
        str | None, Query(pattern="^(json|html)$", description="Output format: json or html")
    ] = None,
) -> Any:
    base, api_root = _base(request)
    doc = ogc.landing(base, api_root=api_root, extra=_extra(agreement))
    accept = request.headers.get("accept", "")
    if f == "html" or (f is None and "text/html" in accept):
        return HTMLResponse(ogc.landing_html(doc))
    return doc


@router.get(
    "/api",
    summary="This OGC API's definition (OpenAPI 3.0)",
    response_description="An OpenAPI 3.0 document of the /ogc routes",
    responses={200: {"content": {OAS30: {}}}},
)
def api_definition(f: F = None) -> JSONResponse:
    return JSONResponse(_definition(), media_type=OAS30)


@cache
def _definition() -> dict[str, Any]:
    return openapi30(router.routes)  # the routes are fixed once this module is imported


@router.get("/conformance", summary="Conformance classes (core, geojson, oas30)")
def conformance(f: F = None) -> dict[str, Any]:
    return ogc.conformance()


@router.get(
    "/collections/{collection_id}/queryables",
    summary="What the collection's items can be selected by (a JSON Schema)",
    responses={200: {"content": {ogc.SCHEMA_JSON: {}}}},
)
def queryables(
    collection_id: str, request: Request, who: Who, agreement: AgreementQ = None, f: F = None
) -> JSONResponse:
    doc = ogc.queryables(who, collection_id, _base(request)[0])
    return JSONResponse(doc, media_type=ogc.SCHEMA_JSON)


@router.get("/collections", summary="The collections the caller may read")
def collections(
    request: Request, ctx: Ctx, who: Who, agreement: AgreementQ = None, f: F = None
) -> dict[str, Any]:
    with ctx.db.read() as s:
        ag = ctx.agreement(s, agreement)
    return ogc.collections(ag, who, _base(request)[0], _extra(agreement))


@router.get("/collections/{collection_id}", summary="One collection")
def collection(
    collection_id: str, request: Request, ctx: Ctx, who: Who, agreement: AgreementQ = None, f: F = None
) -> dict[str, Any]:
    with ctx.db.read() as s:
        ag = ctx.agreement(s, agreement)
    return ogc.collection(ag, who, collection_id, _base(request)[0], _extra(agreement))


@router.get(
    "/collections/{collection_id}/items",
    response_class=GeoJSONResponse,
    summary="Features: bbox, datetime, limit; follow the `next` link for more",
)
def items(
    collection_id: str,
    request: Request,
    ctx: Ctx,
    who: Who,
    agreement: AgreementQ = None,
    bbox: Annotated[str | None, Query(max_length=200, description="minx,miny,maxx,maxy (CRS84)")] = None,
    bbox_crs: Annotated[str | None, Query(alias="bbox-crs", max_length=200)] = None,
    datetime: Annotated[
        str | None, Query(max_length=100, description="An instant or an interval a/b (.. for open)")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=10000)] = 100,
    cursor: Annotated[str | None, Query(max_length=100)] = None,
    offset: Annotated[int, Query(ge=0, le=10**9)] = 0,
    f: F = None,
) -> GeoJSONResponse:
    unknown = sorted(set(request.query_params) - _ITEM_PARAMS)
    if unknown:
        raise ogc.ParameterError(
            f"unknown query parameter {unknown[0]!r}",
            field=unknown[0],
            fix="use bbox, bbox-crs, datetime, limit and the links' cursor/offset",
        )
    start, end = ogc.parse_datetime(datetime) if datetime else (None, None)
    q = ogc.ItemsQuery(
        limit=min(limit, ctx.settings.max_page),
        bbox=ogc.parse_bbox(bbox, bbox_crs) if bbox else None,
        start=start,
        end=end,
        cursor=cursor,
        offset=offset,
        raw_datetime=datetime,
        raw_bbox=bbox,
    )
    now = ctx.clock()
    with ctx.db.read() as s:
        ag = ctx.agreement(s, agreement)
        doc = ogc.items(
            s,
            ag,
            who,
            collection_id,
            q,
            base=_base(request)[0],
            today=now.date(),
            now=now,
            extra=_extra(agreement),
        )
    return GeoJSONResponse(doc)


@router.get(
    "/collections/{collection_id}/items/{feature_id}",
    response_class=GeoJSONResponse,
    summary="One feature",
)
def item(
    collection_id: str,
    feature_id: str,
    request: Request,
    ctx: Ctx,
    who: Who,
    agreement: AgreementQ = None,
    f: F = None,
) -> GeoJSONResponse:
    now = ctx.clock()
    with ctx.db.read() as s:
        ag = ctx.agreement(s, agreement)
        doc = ogc.item(
            s,
            ag,
            who,
            collection_id,
            feature_id,
            base=_base(request)[0],
            today=now.date(),
            extra=_extra(agreement),
        )
    return GeoJSONResponse(doc)
