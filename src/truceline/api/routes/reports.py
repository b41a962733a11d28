"""Daily reports: published copies for everyone, drafts and publication for analysts."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, cast

from fastapi import APIRouter, Depends, status
from fastapi.responses import HTMLResponse
from sqlalchemy.orm import Session

from truceline.api.deps import AgreementQ, Ctx, ReleasedOnlyQ, allow
from truceline.api.routes import ERRORS
from truceline.api.schemas import PublishedOut
from truceline.core.times import as_utc
from truceline.services.auth import Permission, Principal
from truceline.services.publication import draft_report, get_published, list_published, publish_report

router = APIRouter(prefix="/reports", tags=["reports"], responses=ERRORS)
HTML: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/html": {}}, "description": "The report as a self-contained HTML page"}
}


def _pub(r: dict[str, object]) -> PublishedOut:
    published_at = as_utc(cast(dt.datetime, r["published_at"]))
    return PublishedOut(**{**r, "published_at": published_at})


@router.get("", response_model=list[PublishedOut], summary="Published daily reports")
def list_reports(
    ctx: Ctx,
    who: Annotated[Principal, Depends(allow(Permission.reports_published))],
    agreement: AgreementQ = None,
) -> list[PublishedOut]:
    with ctx.db.read() as s:
        return [_pub(r) for r in list_published(s, ctx.agreements.default_id(s, agreement), who)]


@router.get(
    "/{day}",
    response_class=HTMLResponse,
    responses=HTML,
    summary="The published report of a day (404 until it is published)",
)
def published(
    day: dt.date,
    ctx: Ctx,
    _: Annotated[Principal, Depends(allow(Permission.reports_published))],
    agreement: AgreementQ = None,
) -> HTMLResponse:
    with ctx.db.read() as s:
        row = get_published(s, ctx.agreements.default_id(s, agreement), day)
        return HTMLResponse(row.html, headers={"X-Content-SHA256": row.sha256})


@router.get(
    "/{day}/draft",
    response_class=HTMLResponse,
    responses=HTML,
    summary="The day's report as it stands now (not published)",
)
def draft(
    day: dt.date,
    ctx: Ctx,
    _: Annotated[Principal, Depends(allow(Permission.reports_draft))],
    agreement: AgreementQ = None,
    released_only: ReleasedOnlyQ = False,
) -> HTMLResponse:
    with ctx.db.read() as s:
        return HTMLResponse(
            draft_report(s, ctx.agreement(s, agreement), day, released_only=released_only)
        )


@router.post(
    "/{day}/publish",
    response_model=PublishedOut,
    status_code=status.HTTP_201_CREATED,
    summary="Publish the day's report (final: a day is published once)",
)
def publish(
    day: dt.date,
    ctx: Ctx,
    who: Annotated[Principal, Depends(allow(Permission.reports_publish))],
    agreement: AgreementQ = None,
) -> PublishedOut:
    def work(s: Session) -> PublishedOut:
        row = publish_report(s, ctx.agreement(s, agreement), day, actor=who, now=ctx.clock())
        return PublishedOut(
            day=row.day,
            sha256=row.sha256,
            published_at=as_utc(row.published_at),
            published_by=row.published_by,
        )

    return ctx.db.write(work)
