"""Findings (scoped by role) and daily statistics (counts only)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query

from truceline.api.deps import AgreementQ, Ctx, allow
from truceline.api.routes import ERRORS
from truceline.api.schemas import MAX_KEY, DailyStatistics, FindingView, Page
from truceline.services import queries
from truceline.services.auth import Permission, Principal

router = APIRouter(tags=["findings"], responses=ERRORS)


@router.get(
    "/findings",
    response_model=Page[FindingView],
    summary="Findings, filtered, in pages (liaisons: only those released to the parties)",
)
def list_findings(
    ctx: Ctx,
    who: Annotated[Principal, Depends(allow(Permission.findings_read))],
    agreement: AgreementQ = None,
    start: Annotated[dt.date | None, Query(description="First day (incident day, UTC)")] = None,
    end: Annotated[dt.date | None, Query(description="Last day (inclusive)")] = None,
    rule: Annotated[str | None, Query(max_length=64)] = None,
    responsible: Annotated[str | None, Query(max_length=32)] = None,
    status: Annotated[str | None, Query(max_length=16)] = None,
    released: bool | None = None,
    min_probability: Annotated[float | None, Query(ge=0, le=1)] = None,
    sector: Annotated[str | None, Query(max_length=64)] = None,
    cursor: Annotated[str | None, Query(max_length=100)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Page[FindingView]:
    redact = who.scope.released_only
    with ctx.db.read() as s:
        flt = queries.FindingFilter(
            agreement_id=ctx.agreements.default_id(s, agreement),
            start=start,
            end=end,
            rule=rule,
            responsible=responsible,
            status=status,
            released=released,
            min_probability=min_probability,
            sector=sector,
        )
        page = queries.list_findings(
            s, flt, scope=who.scope, cursor=cursor, limit=min(limit, ctx.settings.max_page)
        )
        return Page[FindingView](
            items=[FindingView.view(f, i, redact=redact) for f, i in page.items],
            next_cursor=page.next_cursor,
        )


@router.get(
    "/findings/{pk}",
    response_model=FindingView,
    summary="One finding (the public and liaisons: a released one, as released)",
)
def get_finding(
    pk: Annotated[int, Path(ge=1, le=MAX_KEY)],
    ctx: Ctx,
    # Every role with a map opens what it shows: the public the released findings, as liaisons.
    who: Annotated[Principal, Depends(allow(Permission.map_read))],
) -> FindingView:
    with ctx.db.read() as s:
        f, i = queries.get_finding(s, pk, scope=who.scope)
        return FindingView.view(f, i, redact=who.scope.released_only)


@router.get(
    "/statistics/daily",
    response_model=list[DailyStatistics],
    summary="Counts per day: incidents by kind and sector, findings by rule, party and status",
)
def daily_statistics(
    ctx: Ctx,
    who: Annotated[Principal, Depends(allow(Permission.statistics_read))],
    start: dt.date,
    end: dt.date,
    agreement: AgreementQ = None,
) -> list[DailyStatistics]:
    with ctx.db.read() as s:
        rows = queries.daily_statistics(
            s, ctx.agreements.default_id(s, agreement), start, end, scope=who.scope
        )
    return [DailyStatistics(**r) for r in rows]
