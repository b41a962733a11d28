"""Exports of the filtered set as GeoJSON or CSV: exactly what the dashboard shows for the same
filter (the same query builders; :mod:`truceline.services.selection`)."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import replace
from enum import StrEnum
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from fastapi.responses import StreamingResponse

from truceline.api.deps import Ctx, allow
from truceline.api.routes import ERRORS
from truceline.api.routes.dashboard import Filter, for_agreement
from truceline.io.features import export_csv, export_geojson
from truceline.services import selection
from truceline.services.auth import Permission, Principal

__all__ = ["router"]

router = APIRouter(tags=["export"], responses=ERRORS)


class ExportFormat(StrEnum):
    geojson = "geojson"
    csv = "csv"


_MEDIA = {ExportFormat.geojson: "application/geo+json", ExportFormat.csv: "text/csv; charset=utf-8"}


@router.get(
    "/export",
    response_class=StreamingResponse,
    summary="The filtered findings (and incidents without findings) as GeoJSON or CSV",
    responses={
        200: {
            "content": {"application/geo+json": {}, "text/csv": {}},
            "description": "One record per finding, then one per incident without findings; "
            "liaisons get released findings only, without the raw report's own fields",
        }
    },
)
def export(
    flt: Filter,
    ctx: Ctx,
    who: Annotated[Principal, Depends(allow(Permission.findings_read))],
    format: Annotated[ExportFormat, Query(description="geojson or csv")] = ExportFormat.geojson,
    agreement: Annotated[str | None, Query(max_length=64)] = None,
) -> StreamingResponse:
    # The session stays open while the response streams, and is closed by the stream's end.
    stack = ExitStack()
    session = stack.enter_context(ctx.db.read())
    try:
        f = for_agreement(flt, ctx, session, agreement, who)
        if not who.can(Permission.incidents_read):
            f = replace(f, incidents=False)
    except BaseException:
        stack.close()
        raise
    rows = selection.export_rows(session, f, scope=who.scope)
    days = f"{f.start or 'all'}_{f.end or 'all'}"
    name = re.sub(r"[^A-Za-z0-9._-]", "_", f"truceline-{f.agreement_id}-{days}")  # a header-safe name
    chunks = export_geojson(rows, name=name) if format == ExportFormat.geojson else export_csv(rows)

    def stream() -> Iterator[str]:
        try:
            yield from chunks
        finally:
            stack.close()

    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    return StreamingResponse(
        stream(),
        media_type=_MEDIA[format],
        headers={
            "Content-Disposition": f'attachment; filename="{name}-{stamp}.{format.value}"',
            "Cache-Control": "no-store",
        },
    )
