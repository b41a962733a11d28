"""The planner's web view: an agreement's candidate scenarios, and two of them compared.

The same comparison as ``truceline plan compare AGREEMENT A B`` (default planning parameters), on
the agreement revision in force; comparisons are cached per (revision, A, B) in the context.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response

from truceline.api.deps import AgreementQ, Ctx, allow
from truceline.api.routes import ERRORS
from truceline.api.routes.dashboard import json_response
from truceline.errors import ValidationError
from truceline.services.agreement_store import agreement_files
from truceline.services.auth import Permission, Principal

__all__ = ["router"]

router = APIRouter(prefix="/planner", tags=["planner"], responses=ERRORS)
Planner = Annotated[Principal, Depends(allow(Permission.planner_read))]
ScenarioQ = Annotated[str | None, Query(max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")]


def _files(ctx: Any, agreement: str | None) -> tuple[str, str, dict[str, bytes]]:
    with ctx.db.read() as s:
        ag_id = ctx.agreements.default_id(s, agreement)
        revision, files = agreement_files(s, ag_id)
    return ag_id, revision, files


@router.get("/scenarios", summary="The agreement's candidate scenarios (id, name, description)")
def scenarios(ctx: Ctx, _: Planner, agreement: AgreementQ = None) -> dict[str, Any]:
    ag_id, revision, files = _files(ctx, agreement)
    items = ctx.planner.scenarios(revision, files)
    return {
        "agreement": ag_id,
        "revision": revision,
        "scenarios": [{"id": i.id, "name": i.name, "description": i.description} for i in items],
    }


@router.get(
    "/compare",
    summary="Scenario B against scenario A: both lines and buffer zones, the land changing hands "
    "(GeoJSON), and the figures of `truceline plan compare`",
    response_description="JSON: agreement, scenarios (figures as numbers), rows (the CLI's table), "
    "bbox, data_limits and geojson (a FeatureCollection, WGS84 lon/lat)",
)
def compare(
    request: Request,
    ctx: Ctx,
    _: Planner,
    agreement: AgreementQ = None,
    a: Annotated[ScenarioQ, Query(description="Reference scenario (default: the first)")] = None,
    b: Annotated[ScenarioQ, Query(description="Scenario compared (default: the second)")] = None,
) -> Response:
    ag_id, revision, files = _files(ctx, agreement)
    known = [i.id for i in ctx.planner.scenarios(revision, files)]
    a = a or known[0]
    b = b or (known[1] if len(known) > 1 else known[0])
    for name, value in (("a", a), ("b", b)):
        if value not in known:
            raise ValidationError(
                f"agreement {ag_id!r} has no scenario {value!r}",
                field=name,
                value=value,
                fix=f"use one of: {', '.join(known)}",
            )
    view = ctx.planner.comparison(revision, files, a, b)[1]
    return json_response(request, {**view, "revision": revision})
