"""Possible duplicates: pairs of reports fusion did not link automatically, for an analyst."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query
from sqlalchemy import select
from sqlalchemy.orm import Session

from truceline.api.deps import Ctx, allow
from truceline.api.routes import ERRORS
from truceline.api.routes.events import decision_out
from truceline.api.schemas import (
    MAX_KEY,
    DecisionOut,
    DuplicateDecisionIn,
    DuplicateOut,
    DuplicateReportOut,
    Page,
)
from truceline.errors import ValidationError
from truceline.services import events as svc
from truceline.services.auth import Permission, Principal
from truceline.store.models import AuditRow

router = APIRouter(prefix="/duplicates", tags=["events"], responses=ERRORS)


def _aware(t: dt.datetime | None, name: str) -> dt.datetime | None:
    if t is None:
        return None
    if t.tzinfo is None:
        raise ValidationError(
            f"{name} has no UTC offset", field=name, value=t.isoformat(), fix="e.g. 2025-03-01T00:00:00Z"
        )
    return t.astimezone(dt.UTC)


def _cursor(cursor: str | None) -> int:
    if cursor is None:
        return 0
    if not cursor.isdigit() or len(cursor) > 18:
        raise ValidationError(
            "not a cursor of this list", field="cursor", value=cursor, fix="pass next_cursor as given"
        )
    return int(cursor)


@router.get(
    "",
    response_model=Page[DuplicateOut],
    summary="Possible duplicates still open (both reports, the probability, the evidence), in pages",
)
def list_duplicates(
    ctx: Ctx,
    who: Annotated[Principal, Depends(allow(Permission.events_review))],
    agreement: Annotated[str | None, Query(max_length=64)] = None,
    start: Annotated[
        dt.datetime | None, Query(description="earlier report at or after (ISO 8601)")
    ] = None,
    end: Annotated[dt.datetime | None, Query(description="earlier report before (ISO 8601)")] = None,
    min_probability: Annotated[float, Query(ge=0.0, le=1.0)] = 0.0,
    cursor: Annotated[str | None, Query(max_length=100)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Page[DuplicateOut]:
    n = min(limit, ctx.settings.max_page)
    with ctx.db.read() as s:
        rows = svc.list_duplicates(
            s,
            agreement_id=ctx.agreements.default_id(s, agreement),
            start=_aware(start, "start"),
            end=_aware(end, "end"),
            min_probability=min_probability,
            after=_cursor(cursor),
            limit=n + 1,
        )
    items = [
        DuplicateOut(
            pk=d.pk,
            probability=d.probability,
            a=DuplicateReportOut(
                pk=d.a_pk,
                report_id=d.a_report_id,
                event_id=d.a_event_id,
                source_type=d.a_source_type,
                observed_at=d.a_observed_at,
            ),
            b=DuplicateReportOut(
                pk=d.b_pk,
                report_id=d.b_report_id,
                event_id=d.b_event_id,
                source_type=d.b_source_type,
                observed_at=d.b_observed_at,
            ),
            reason=d.reason,
        )
        for d in rows[:n]
    ]
    return Page[DuplicateOut](items=items, next_cursor=str(rows[n - 1].pk) if len(rows) > n else None)


@router.post(
    "/{pair}/decide",
    response_model=DecisionOut,
    summary="An analyst's answer: the two reports are one event (linked, audited, in the ledger) or not",
)
def decide(
    pair: Annotated[int, Path(ge=1, le=MAX_KEY)],
    body: DuplicateDecisionIn,
    ctx: Ctx,
    who: Annotated[Principal, Depends(allow(Permission.events_review))],
) -> DecisionOut:
    def work(s: Session) -> DecisionOut:
        d = svc.decide_duplicate(
            s, pair, same=body.same, actor=who, now=ctx.clock(), comment=body.comment
        )
        if d is not None:
            return decision_out(s, d, "merge")
        audit = s.execute(
            select(AuditRow.pk)
            .where(AuditRow.entity == "fusion_pair", AuditRow.entity_id == str(pair))
            .order_by(AuditRow.pk.desc())
            .limit(1)
        ).scalars()
        return DecisionOut(events=[], audit=list(audit))

    return ctx.db.write(work)
