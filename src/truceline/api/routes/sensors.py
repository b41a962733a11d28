"""Sensors, their detections, and locating stored detections as incidents."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from truceline.api.deps import AgreementQ, Ctx, allow
from truceline.api.routes import ERRORS
from truceline.api.schemas import (
    DetectionOut,
    DetectionsIn,
    LocatedIncidentOut,
    LocateIn,
    LocateOut,
    Page,
    RecordVerdictOut,
    SensorCollection,
    SensorsIn,
    UnassociatedOut,
    VerdictsOut,
)
from truceline.core.acoustic import Weather
from truceline.core.acoustic.propagation import (
    TOLD_TEMPERATURE_SIGMA_C,
    TOLD_WIND_SIGMA_MPS,
    UNTOLD_TEMPERATURE_SIGMA_C,
    UNTOLD_WIND_SIGMA_MPS,
)
from truceline.errors import PayloadTooLargeError
from truceline.services import queries
from truceline.services import sensors as svc
from truceline.services.auth import Permission, Principal

router = APIRouter(tags=["sensors"], responses=ERRORS)


def _bounded(records: list[Any], limit: int, name: str) -> None:
    if len(records) > limit:
        raise PayloadTooLargeError(
            f"{len(records)} {name} in one request; the limit is {limit}",
            field=name,
            value=len(records),
            fix=f"send at most {limit} per request",
        )


def _verdicts(results: list[svc.RecordVerdict]) -> VerdictsOut:
    return VerdictsOut(
        counts=dict(Counter(str(r.status) for r in results)),
        results=[RecordVerdictOut.model_validate(r, from_attributes=True) for r in results],
    )


@router.get(
    "/sensors",
    response_model=SensorCollection,
    summary="The agreement's sensors as GeoJSON points (a monitor: those of their sector)",
)
def list_sensors(
    ctx: Ctx,
    who: Annotated[Principal, Depends(allow(Permission.sensors_read))],
    agreement: AgreementQ = None,
) -> dict[str, Any]:
    with ctx.db.read() as s:
        aid = ctx.agreements.default_id(s, agreement)
        return svc.sensors_geojson(s, aid, scope=who.scope, now=ctx.clock())


@router.post(
    "/sensors",
    response_model=VerdictsOut,
    summary="Register or update sensors: per record created, updated, unchanged or rejected",
)
def register_sensors(
    body: SensorsIn,
    ctx: Ctx,
    who: Annotated[Principal, Depends(allow(Permission.sensors_register))],
    agreement: AgreementQ = None,
) -> VerdictsOut:
    _bounded(body.sensors, ctx.settings.max_batch, "sensors")
    res = ctx.db.write(
        lambda s: svc.register_sensors(
            s, ctx.agreement(s, agreement), body.sensors, actor=who, now=ctx.clock()
        )
    )
    return _verdicts(res)


@router.post(
    "/detections",
    response_model=VerdictsOut,
    summary="Submit detections: per record accepted, duplicate (same sensor and id) or rejected",
)
def submit_detections(
    body: DetectionsIn,
    ctx: Ctx,
    who: Annotated[Principal, Depends(allow(Permission.detections_submit))],
    agreement: AgreementQ = None,
) -> VerdictsOut:
    _bounded(body.detections, ctx.settings.max_batch, "detections")
    res = ctx.db.write(
        lambda s: svc.submit_detections(
            s, ctx.agreement(s, agreement), body.detections, actor=who, now=ctx.clock()
        )
    )
    return _verdicts(res)


@router.get("/detections", response_model=Page[DetectionOut], summary="Detections, filtered, in pages")
def list_detections(
    ctx: Ctx,
    who: Annotated[Principal, Depends(allow(Permission.detections_read))],
    agreement: AgreementQ = None,
    start: Annotated[dt.datetime | None, Query(description="arrival >= start (ISO 8601)")] = None,
    end: Annotated[dt.datetime | None, Query(description="arrival < end (ISO 8601)")] = None,
    sensor: Annotated[str | None, Query(max_length=64)] = None,
    associated: Annotated[
        bool | None, Query(description="true: linked to an incident; false: not yet")
    ] = None,
    cursor: Annotated[str | None, Query(max_length=100)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Page[DetectionOut]:
    with ctx.db.read() as s:
        page = svc.list_detections(
            s,
            ctx.agreements.default_id(s, agreement),
            start=queries.time_bound(start, "start"),
            end=queries.time_bound(end, "end"),
            sensor=sensor,
            associated=associated,
            cursor=cursor,
            limit=min(limit, ctx.settings.max_page),
        )
        return Page[DetectionOut](
            items=[DetectionOut.of(d) for d in page.items], next_cursor=page.next_cursor
        )


@router.post(
    "/acoustic/locate",
    response_model=LocateOut,
    summary="Locate the stored detections of a window not yet associated; store the events as "
    "incidents (idempotent, adjudicated, fused) and link each detection to its incident",
)
def locate(
    body: LocateIn,
    ctx: Ctx,
    who: Annotated[Principal, Depends(allow(Permission.acoustic_locate))],
    agreement: AgreementQ = None,
) -> LocateOut:
    start, end = queries.time_bound(body.start, "start"), queries.time_bound(body.end, "end")
    assert start is not None and end is not None
    told = (body.temperature_c, body.wind_speed_mps, body.wind_from_deg)
    weather = None
    if any(v is not None for v in told):
        d = Weather.untold()  # the acoustic service's defaults for what is not given
        weather = Weather.constant(
            float(d.temperature_c[0]) if told[0] is None else told[0],
            float(d.wind_speed_mps[0]) if told[1] is None else told[1],
            float(d.wind_from_deg[0]) if told[2] is None else told[2],
            temperature_sigma_c=body.temperature_sigma_c
            or (UNTOLD_TEMPERATURE_SIGMA_C if told[0] is None else TOLD_TEMPERATURE_SIGMA_C),
            wind_sigma_mps=body.wind_sigma_mps
            or (UNTOLD_WIND_SIGMA_MPS if told[1] is None else TOLD_WIND_SIGMA_MPS),
        )
    out = ctx.db.write(
        lambda s: svc.locate_stored(
            s,
            ctx.agreement(s, agreement),
            start=start,
            end=end,
            weather=weather,
            actor=who,
            now=ctx.clock(),
        )
    )
    return LocateOut(
        detections=out.detections,
        events=out.events,
        accepted=out.accepted,
        duplicates=out.duplicates,
        rejected=out.rejected,
        findings=out.findings,
        linked=out.linked,
        incidents=[LocatedIncidentOut.model_validate(i, from_attributes=True) for i in out.incidents],
        unassociated=[UnassociatedOut.model_validate(u, from_attributes=True) for u in out.unassociated],
    )
