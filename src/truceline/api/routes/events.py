"""Fused events: the reports of one event; an analyst splits or merges them."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path
from sqlalchemy import select
from sqlalchemy.orm import Session

from truceline.api.deps import Ctx, allow
from truceline.api.routes import ERRORS
from truceline.api.schemas import MAX_KEY, DecisionOut, EventOut, MergeIn, SplitIn
from truceline.services import events as svc
from truceline.services.auth import Permission, Principal
from truceline.store.models import AuditRow, IncidentRow

router = APIRouter(prefix="/events", tags=["events"], responses=ERRORS)
EventId = Annotated[int, Path(ge=1, le=MAX_KEY)]


@router.get("/{event_id}", response_model=EventOut, summary="One fused event and its reports")
def get_event(
    event_id: EventId, ctx: Ctx, who: Annotated[Principal, Depends(allow(Permission.events_read))]
) -> EventOut:
    with ctx.db.read() as s:
        view = svc.get_event(s, event_id, scope=who.scope)
        return EventOut.of(view.event, view.members)


def decision_out(s: Session, decision: svc.Decision, action: str) -> DecisionOut:
    ids = [str(e.pk) for e in decision.events]
    audit = s.execute(
        select(AuditRow.pk)
        .where(AuditRow.entity == "event", AuditRow.entity_id.in_(ids), AuditRow.action == action)
        .order_by(AuditRow.pk.desc())
        .limit(len(ids))
    ).scalars()
    events = []
    for e in decision.events:  # the events of one decision (a handful)
        members = s.execute(
            select(IncidentRow).where(IncidentRow.event_id == e.pk).order_by(IncidentRow.pk)
        ).scalars()
        events.append(EventOut.of(e, list(members)))
    return DecisionOut(events=events, audit=sorted(audit))


@router.post(
    "/{event_id}/split",
    response_model=DecisionOut,
    summary="Move the given reports out of the event into a new event (audited, in the ledger)",
)
def split_event(
    event_id: EventId,
    body: SplitIn,
    ctx: Ctx,
    who: Annotated[Principal, Depends(allow(Permission.events_review))],
) -> DecisionOut:
    def work(s: Session) -> DecisionOut:
        d = svc.split(s, event_id, body.incidents, actor=who, now=ctx.clock(), comment=body.comment)
        return decision_out(s, d, "split")

    return ctx.db.write(work)


@router.post(
    "/merge",
    response_model=DecisionOut,
    summary="Merge events into the smallest id (audited, in the ledger)",
)
def merge_events(
    body: MergeIn,
    ctx: Ctx,
    who: Annotated[Principal, Depends(allow(Permission.events_review))],
) -> DecisionOut:
    def work(s: Session) -> DecisionOut:
        d = svc.merge(s, body.events, actor=who, now=ctx.clock(), comment=body.comment)
        return decision_out(s, d, "merge")

    return ctx.db.write(work)
