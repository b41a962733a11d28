"""Incidents: submit one or a batch, list with filters, read one, review, history."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Response, status
from sqlalchemy.orm import Session

from truceline.api.deps import AgreementQ, Ctx, allow
from truceline.api.routes import ERRORS
from truceline.api.schemas import (
    MAX_KEY,
    AuditOut,
    BatchIn,
    BatchOut,
    FindingOut,
    FusionPairOut,
    IncidentDetail,
    IncidentDetectionOut,
    IncidentOut,
    LinkedReportOut,
    ObservationsIn,
    Page,
    RecordResultOut,
    ReviewIn,
    ReviewOut,
    SubmittedOut,
    WithdrawalsIn,
    WithdrawalsOut,
)
from truceline.core.incidents import Incident, Kind, SourceType
from truceline.errors import PayloadTooLargeError, RecordError
from truceline.services import events, queries
from truceline.services.audit import history
from truceline.services.auth import Permission, Principal
from truceline.services.review import review
from truceline.services.sensors import from_us
from truceline.services.submissions import Verdict, submit_observations, submit_records

router = APIRouter(prefix="/incidents", tags=["incidents"], responses=ERRORS)
PK = Annotated[int, Path(ge=1, le=MAX_KEY)]


@router.post(
    "",
    response_model=SubmittedOut,
    status_code=status.HTTP_201_CREATED,
    summary="Submit one incident (201 accepted, 200 duplicate of a stored report, 422 rejected)",
    responses={200: {"model": SubmittedOut, "description": "Already stored: nothing changed"}},
)
async def submit_one(
    incident: Incident,
    response: Response,
    ctx: Ctx,
    who: Annotated[Principal, Depends(allow(Permission.incidents_submit))],
    agreement: AgreementQ = None,
) -> SubmittedOut:
    # Waits on the group-commit writer without holding a thread of the pool.
    batch_id, r = await ctx.submit_one_async(agreement, incident, who)
    if r.status == Verdict.rejected:
        raise RecordError(r.reason or "rejected", record=r.id, field=r.field or None)
    if r.status == Verdict.duplicate:
        response.status_code = status.HTTP_200_OK
    return SubmittedOut(batch_id=batch_id, id=r.id, status=r.status, pk=r.pk, findings=r.findings)


@router.post(
    "/batch",
    response_model=BatchOut,
    summary="Submit a batch: per record accepted, duplicate or rejected (with the reason)",
)
def submit_batch(
    body: BatchIn,
    ctx: Ctx,
    who: Annotated[Principal, Depends(allow(Permission.incidents_submit))],
    agreement: AgreementQ = None,
) -> BatchOut:
    limit = ctx.settings.max_batch
    if len(body.incidents) > limit:
        raise PayloadTooLargeError(
            f"{len(body.incidents)} incidents in one batch; the limit is {limit}",
            field="incidents",
            value=len(body.incidents),
            fix=f"send batches of at most {limit}",
        )
    res = ctx.db.write(
        lambda s: submit_records(
            s, ctx.agreement(s, agreement), body.incidents, principal=who, now=ctx.clock()
        )
    )
    return BatchOut(
        batch_id=res.batch_id,
        accepted=res.count(Verdict.accepted),
        duplicates=res.count(Verdict.duplicate),
        rejected=res.count(Verdict.rejected),
        results=[RecordResultOut.model_validate(r, from_attributes=True) for r in res.results],
    )


@router.post(
    "/observations",
    response_model=BatchOut,
    summary="Submit monitors' observations (observer, time window, direction arc, distance range): "
    "per record accepted, duplicate or rejected",
)
def submit_observations_route(
    body: ObservationsIn,
    ctx: Ctx,
    who: Annotated[Principal, Depends(allow(Permission.incidents_submit))],
    agreement: AgreementQ = None,
) -> BatchOut:
    limit = ctx.settings.max_batch
    if len(body.observations) > limit:
        raise PayloadTooLargeError(
            f"{len(body.observations)} observations in one request; the limit is {limit}",
            field="observations",
            value=len(body.observations),
            fix=f"send batches of at most {limit}",
        )
    res = ctx.db.write(
        lambda s: submit_observations(
            s, ctx.agreement(s, agreement), body.observations, principal=who, now=ctx.clock()
        )
    )
    return BatchOut(
        batch_id=res.batch_id,
        accepted=res.count(Verdict.accepted),
        duplicates=res.count(Verdict.duplicate),
        rejected=res.count(Verdict.rejected),
        results=[RecordResultOut.model_validate(r, from_attributes=True) for r in res.results],
    )


@router.post(
    "/withdrawals",
    response_model=WithdrawalsOut,
    summary="Apply ACLED's deletions list: the stored reports it names are withdrawn (kept, "
    "audited, without findings, left out of counts and maps)",
)
def withdraw(
    body: WithdrawalsIn,
    ctx: Ctx,
    who: Annotated[Principal, Depends(allow(Permission.incidents_review))],
    agreement: AgreementQ = None,
) -> WithdrawalsOut:
    from truceline.services.exchange import import_acled_deletions

    doc = {"data": body.data}
    res = ctx.db.write(
        lambda s: import_acled_deletions(
            s, ctx.agreement(s, agreement), doc, principal=who, now=ctx.clock()
        )
    )
    return WithdrawalsOut(
        withdrawn=res.withdrawn,
        already=res.already,
        not_stored=len(res.not_stored),
        rejected=[
            RecordResultOut(
                index=r.row - 1, id=r.id, status=Verdict.rejected, field=r.field, reason=r.reason
            )
            for r in res.rejects
        ],
        findings_withdrawn=res.findings_withdrawn,
    )


@router.get("", response_model=Page[IncidentOut], summary="Incidents, filtered, in pages")
def list_incidents(
    ctx: Ctx,
    who: Annotated[Principal, Depends(allow(Permission.incidents_read))],
    agreement: AgreementQ = None,
    bbox: Annotated[
        str | None,
        Query(max_length=200, description="west,south,east,north (WGS84 deg); west > east crosses 180°"),
    ] = None,
    start: Annotated[dt.datetime | None, Query(description="observed_at >= start (ISO 8601)")] = None,
    end: Annotated[dt.datetime | None, Query(description="observed_at < end (ISO 8601)")] = None,
    kind: Annotated[list[Kind] | None, Query(max_length=20)] = None,
    party: Annotated[str | None, Query(max_length=32)] = None,
    sector: Annotated[str | None, Query(max_length=64)] = None,
    rule: Annotated[str | None, Query(max_length=64, description="Has a finding of this rule")] = None,
    status_: Annotated[str | None, Query(alias="status", max_length=16)] = None,
    source_type: SourceType | None = None,
    in_force: Annotated[
        bool | None, Query(description="Only reports on days the agreement was (not) in force")
    ] = None,
    in_area: Annotated[
        bool | None, Query(description="Only reports inside (outside) the area of application")
    ] = None,
    withdrawn: Annotated[
        bool,
        Query(description="true: only the reports their source withdrew (left out otherwise)"),
    ] = False,
    cursor: Annotated[str | None, Query(max_length=100)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Page[IncidentOut]:
    with ctx.db.read() as s:
        flt = queries.IncidentFilter(
            agreement_id=ctx.agreements.default_id(s, agreement),
            bbox=queries.BBox.parse(bbox) if bbox else None,
            start=queries.time_bound(start, "start"),
            end=queries.time_bound(end, "end"),
            kind=[k.value for k in kind or ()],
            party=party,
            sector=sector,
            rule=rule,
            status=status_,
            source_type=source_type.value if source_type else None,
            in_force=in_force,
            in_area=in_area,
            withdrawn=withdrawn,
        )
        page = queries.list_incidents(
            s, flt, scope=who.scope, cursor=cursor, limit=min(limit, ctx.settings.max_page)
        )
        return Page[IncidentOut](
            items=[IncidentOut.of(r) for r in page.items], next_cursor=page.next_cursor
        )


@router.get("/{pk}", response_model=IncidentDetail, summary="One incident with its findings")
def get_incident(
    pk: PK, ctx: Ctx, who: Annotated[Principal, Depends(allow(Permission.incidents_read))]
) -> IncidentDetail:
    with ctx.db.read() as s:
        row = queries.get_incident(s, pk, scope=who.scope)
        found = queries.findings_of(s, pk, scope=who.scope)
        linked = events.linked_reports(s, row, scope=who.scope)
        weighed = events.fusion_pairs_of(s, row, scope=who.scope)
        dets = events.detections_of(s, pk) if row.source_type == "acoustic" else []
        return IncidentDetail(
            **IncidentOut.of(row).model_dump(),
            findings=[FindingOut.of(f) for f in found],
            linked_reports=[LinkedReportOut.model_validate(x, from_attributes=True) for x in linked],
            fusion=[FusionPairOut.model_validate(x, from_attributes=True) for x in weighed],
            detections=[
                IncidentDetectionOut(
                    sensor_id=d.sensor_id,
                    detection_id=d.detection_id,
                    arrival_time=from_us(d.arrival_us),
                    signal=d.signal,
                )
                for d in dets
            ],
        )


@router.post(
    "/{pk}/review",
    response_model=ReviewOut,
    summary="Verify, reject, send back an incident and its findings, or release verified findings",
)
def review_incident(
    pk: PK,
    body: ReviewIn,
    ctx: Ctx,
    who: Annotated[Principal, Depends(allow(Permission.incidents_review))],
) -> ReviewOut:
    def work(s: Session) -> ReviewOut:
        out = review(
            s,
            pk,
            body.action,
            comment=body.comment,
            finding_pks=body.findings,
            actor=who,
            now=ctx.clock(),
        )
        return ReviewOut(
            incident=IncidentOut.of(out.incident),
            findings=[FindingOut.of(f) for f in out.findings],
            changes=out.changes,
        )

    return ctx.db.write(work)


@router.get(
    "/{pk}/history",
    response_model=list[AuditOut],
    summary="Every change of the incident and its findings: who, when, before, after",
)
def incident_history(
    pk: PK, ctx: Ctx, who: Annotated[Principal, Depends(allow(Permission.audit_read))]
) -> list[AuditOut]:
    with ctx.db.read() as s:
        queries.get_incident(s, pk, scope=who.scope)
        rows = history(s, "incident", pk)
        for f in queries.findings_of(s, pk, scope=who.scope):
            rows.extend(history(s, "finding", f.pk))
        rows.sort(key=lambda a: a.pk)
        return [AuditOut.of(a) for a in rows]
